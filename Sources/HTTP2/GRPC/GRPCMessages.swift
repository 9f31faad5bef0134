import NIOCore

/// One complete unary gRPC request as the server received it.
public struct GRPCRequest: Sendable {
    /// HTTP/2 stream that carries the call; pass it back with the response.
    public var streamID: Int32
    /// `:path`, e.g. `/dtmgimp.Dtm/Submit`.
    public var path: String
    /// Every regular (non-pseudo) request header in arrival order, names lower-case as HTTP/2
    /// requires; includes `content-type`, `te`, `grpc-timeout` and the caller's metadata.
    public var metadata: [(String, String)]
    /// The request message (protobuf bytes, without the 5-byte prefix).
    public var message: [UInt8]
    /// `grpc-timeout` as sent by the client, if any.
    public var timeout: Duration?
    /// When the call expires: arrival time plus `timeout`.
    public var deadline: NIODeadline?
    /// The executor of the connection's event loop, on which the handler runs: work the handler starts
    /// for this request may prefer it too.
    public var taskExecutor: (any TaskExecutor)?

    public init(
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
    public func metadata(_ name: String) -> String? {
        metadata.first { $0.0 == name }?.1
    }
}

/// What a handler answers: a message with status OK, or an error status (sent trailers-only).
public struct GRPCResponse: Sendable {
    public var status: GRPCStatus
    public var message: [UInt8]
    /// Extra response headers (sent in the initial HEADERS; with a trailers-only error they go
    /// in that single HEADERS frame).
    public var metadata: [(String, String)]

    public init(status: GRPCStatus = .ok, message: [UInt8] = [], metadata: [(String, String)] = []) {
        self.status = status
        self.message = message
        self.metadata = metadata
    }

    public static func ok(_ message: [UInt8], metadata: [(String, String)] = []) -> GRPCResponse {
        GRPCResponse(status: .ok, message: message, metadata: metadata)
    }

    public static func error(_ code: GRPCStatusCode, _ message: String = "") -> GRPCResponse {
        GRPCResponse(status: GRPCStatus(code, message))
    }

    /// The answer for a method the server does not serve.
    public static func unimplemented(path: String) -> GRPCResponse {
        GRPCResponse(status: .unimplementedMethod(path))
    }
}

/// How a client call ended.
public struct GRPCCallResult: Sendable {
    public var status: GRPCStatus
    /// The response message when the status is OK (empty otherwise).
    public var message: [UInt8]
    /// Response headers and trailers (without pseudo-headers), in arrival order.
    public var metadata: [(String, String)]
    /// True when the request provably never reached the server's application (refused stream,
    /// GOAWAY above the last stream id, connection never established): safe to retry even for
    /// non-idempotent methods.
    public var isTransparentlyRetryable: Bool

    public init(
        status: GRPCStatus, message: [UInt8] = [], metadata: [(String, String)] = [],
        isTransparentlyRetryable: Bool = false
    ) {
        self.status = status
        self.message = message
        self.metadata = metadata
        self.isTransparentlyRetryable = isTransparentlyRetryable
    }

    public var isOK: Bool { status.code == .ok }
}
