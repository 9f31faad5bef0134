package import NIOCore

/// One complete unary gRPC request as the server received it.
package struct GRPCRequest: Sendable {
    /// HTTP/2 stream that carries the call; pass it back with the response.
    package var streamID: Int32
    /// `:path`, e.g. `/dtmgimp.Dtm/Submit`.
    package var path: String
    /// Every regular (non-pseudo) request header in arrival order, names lower-case as HTTP/2
    /// requires; includes `content-type`, `te`, `grpc-timeout` and the caller's metadata.
    package var metadata: [(String, String)]
    /// The request message (protobuf bytes, without the 5-byte prefix).
    package var message: [UInt8]
    /// `grpc-timeout` as sent by the client, if any.
    package var timeout: Duration?
    /// When the call expires: arrival time plus `timeout`.
    package var deadline: NIODeadline?
    /// The executor of the connection's event loop, on which the handler runs: work the handler starts
    /// for this request may prefer it too.
    package var taskExecutor: (any TaskExecutor)?

    package init(
        streamID: Int32, path: String, metadata: [(String, String)], message: [UInt8],
        timeout: Duration? = nil, deadline: NIODeadline? = nil
    ) {
        self.streamID = streamID
        self.path = path
        self.metadata = metadata
        self.message = message
        self.timeout = timeout
        self.deadline = deadline
    }

    /// The first value of a metadata key (compare lower-case).
    package func metadata(_ name: String) -> String? {
        metadata.first { $0.0 == name }?.1
    }
}

/// What a handler answers: a message with status OK, or an error status (sent trailers-only).
package struct GRPCResponse: Sendable {
    package var status: GRPCStatus
    package var message: [UInt8]
    /// Extra response headers (sent in the initial HEADERS; with a trailers-only error they go
    /// in that single HEADERS frame).
    package var metadata: [(String, String)]

    package init(status: GRPCStatus = .ok, message: [UInt8] = [], metadata: [(String, String)] = []) {
        self.status = status
        self.message = message
        self.metadata = metadata
    }

    package static func ok(_ message: [UInt8], metadata: [(String, String)] = []) -> GRPCResponse {
        GRPCResponse(status: .ok, message: message, metadata: metadata)
    }

    package static func error(_ code: GRPCStatusCode, _ message: String = "") -> GRPCResponse {
        GRPCResponse(status: GRPCStatus(code, message))
    }

    /// The answer for a method the server does not serve.
    package static func unimplemented(path: String) -> GRPCResponse {
        GRPCResponse(status: .unimplementedMethod(path))
    }
}

/// How a client call ended.
package struct GRPCCallResult: Sendable {
    package var status: GRPCStatus
    /// The response message when the status is OK (empty otherwise).
    package var message: [UInt8]
    /// Response headers and trailers (without pseudo-headers), in arrival order.
    package var metadata: [(String, String)]
    /// True when the request provably never reached the server's application (refused stream,
    /// GOAWAY above the last stream id, connection never established): safe to retry even for
    /// non-idempotent methods.
    package var isTransparentlyRetryable: Bool

    package init(
        status: GRPCStatus, message: [UInt8] = [], metadata: [(String, String)] = [],
        isTransparentlyRetryable: Bool = false
    ) {
        self.status = status
        self.message = message
        self.metadata = metadata
        self.isTransparentlyRetryable = isTransparentlyRetryable
    }

    package var isOK: Bool { status.code == .ok }
}
