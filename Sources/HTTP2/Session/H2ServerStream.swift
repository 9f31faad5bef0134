import NIOCore

/// Per-stream state of the server session.
final class ServerStream {
    let id: Int32
    var path: String?
    var isPost = false
    var contentType: String?
    var timeout: Duration?
    var deadline: NIODeadline?
    var metadata: [(String, String)] = []
    var headerListSize = 0
    var deframer: GRPCMessageDeframer
    var message: [UInt8]?
    var remoteClosed = false
    var responded = false
    var responseBody: [UInt8] = []
    var responseOffset = 0
    var trailerStatus: GRPCStatus?
    /// Served as a bidirectional stream (its path is in `streamingPaths`).
    var isStreaming = false
    var headersSent = false
    /// The data source returned NGHTTP2_ERR_DEFERRED and waits for `nghttp2_session_resume_data`.
    var bodyDeferred = false
    /// Admitted without a credential (`GRPCAdmission.open`): its bytes wait for a budget reservation before its
    /// window reopens (H2ServerSession+FlowControl.swift).
    var budgeted = true
    /// Flow-control bookkeeping of the request bytes held (H2ServerSession+FlowControl.swift).
    var receipt = StreamReceipt()

    /// When its HEADERS began, or for a streaming call when its last message arrived (the read timeout).
    var lastActivity: NIODeadline

    init(id: Int32, maxMessageSize: Int, began: NIODeadline) {
        self.id = id
        self.lastActivity = began
        self.deframer = GRPCMessageDeframer(maxMessageSize: maxMessageSize)
    }
}

/// What a stream holds of its request, what of it is reserved in the pending-bytes budgets, and what the windows have
/// not been given back.
struct StreamReceipt {
    /// Bytes received and not handed on.
    var held = 0
    /// Reserved in the budgets for the whole message being received (0: not admitted yet).
    var reserved = 0
    /// Bytes held unadmitted whose connection window was given back (the connection's unadmitted allowance).
    var unadmitted = 0
    /// Bytes not yet given back to the connection's window and to the stream's.
    var unreturnedToConnection = 0
    var unreturnedToStream = 0
    /// The stream's window was widened past its initial size (for a message larger than that).
    var windowWidened = false

    var admitted: Bool { reserved > 0 }

    /// `count` more bytes arrived (saturating: the windows bound them long before).
    mutating func arrived(_ count: Int) {
        held = Self.adding(held, count)
        unreturnedToConnection = Self.adding(unreturnedToConnection, count)
        unreturnedToStream = Self.adding(unreturnedToStream, count)
    }

    private static func adding(_ a: Int, _ b: Int) -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? .max : sum
    }
}
