internal import CNghttp2

/// Per-stream state of one call of an `H2ClientSession`, and its outcome once the stream closed.
final class H2ClientCall {
    let completion: H2ClientSession.Completion
    /// Set for a streaming call: where its response messages go.
    var onMessage: H2ClientSession.MessageHandler?
    /// A streaming call whose request side is still open (more `send`s may come).
    var sendOpen = false
    /// nghttp2 was told to wait (NGHTTP2_ERR_DEFERRED) for more request bytes.
    var deferred = false
    /// Streaming call: DATA bytes received, and those handed to the reader inside whole messages (the reader
    /// consumes those; the rest is released when the call ends).
    var receivedBytes = 0
    var handedOverBytes = 0
    var body: [UInt8]
    var bodyOffset = 0
    var headersSent = false
    var httpStatus: Int?
    var grpcStatus: GRPCStatusCode?
    var grpcMessage = ""
    var metadata: [(String, String)] = []
    var deframer: GRPCMessageDeframer
    var response: [UInt8]?
    var error: GRPCStatus?

    init(completion: @escaping H2ClientSession.Completion, body: [UInt8], maxMessageSize: Int) {
        self.completion = completion
        self.body = body
        self.deframer = GRPCMessageDeframer(maxMessageSize: maxMessageSize)
    }

    /// The call's outcome once its stream closed (rules of grpc-go's http2_client).
    func result(errorCode: UInt32) -> GRPCCallResult {
        if let error { return GRPCCallResult(status: error, metadata: metadata) }
        if let grpcStatus {
            if grpcStatus == .ok {
                if onMessage != nil {
                    guard !deframer.hasPartialMessage else {
                        return GRPCCallResult(status: GRPCStatus(.internal, "grpc: stream ended inside a message"), metadata: metadata)
                    }
                    return GRPCCallResult(status: .ok, metadata: metadata)
                }
                guard let response, !deframer.hasPartialMessage else {
                    return GRPCCallResult(status: GRPCStatus(.internal, "grpc: no response message for unary RPC"), metadata: metadata)
                }
                return GRPCCallResult(status: .ok, message: response, metadata: metadata)
            }
            return GRPCCallResult(status: GRPCStatus(grpcStatus, grpcMessage), metadata: metadata)
        }
        switch errorCode {
        case NGHTTP2_REFUSED_STREAM.rawValue:
            return GRPCCallResult(
                status: GRPCStatus(.unavailable, "stream refused by server"), metadata: metadata,
                isTransparentlyRetryable: true)
        case NGHTTP2_CANCEL.rawValue:
            return GRPCCallResult(status: GRPCStatus(.cancelled, "stream cancelled"), metadata: metadata)
        case NGHTTP2_ENHANCE_YOUR_CALM.rawValue:
            return GRPCCallResult(status: GRPCStatus(.resourceExhausted, "stream reset: ENHANCE_YOUR_CALM"), metadata: metadata)
        case NGHTTP2_NO_ERROR.rawValue:
            break
        default:
            return GRPCCallResult(status: GRPCStatus(.internal, "stream reset with HTTP/2 error code \(errorCode)"), metadata: metadata)
        }
        if let httpStatus, httpStatus != 200 {
            return GRPCCallResult(
                status: GRPCStatus(.fromHTTPStatus(httpStatus), "unexpected HTTP status \(httpStatus)"), metadata: metadata)
        }
        return GRPCCallResult(status: GRPCStatus(.internal, "server closed the stream without sending trailers"), metadata: metadata)
    }
}
