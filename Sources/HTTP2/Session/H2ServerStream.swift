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

    /// When its HEADERS began, or for a streaming call when its last message arrived (the read timeout).
    var lastActivity: NIODeadline

    init(id: Int32, maxMessageSize: Int, began: NIODeadline) {
        self.id = id
        self.lastActivity = began
        self.deframer = GRPCMessageDeframer(maxMessageSize: maxMessageSize)
    }
}
