import CNghttp2
import Logging
import NIOCore

/// The server half of an HTTP/2 connection carrying gRPC calls, around one `nghttp2_session*`.
/// I/O-free: the owner feeds received bytes with `receive(_:)`, writes what `pendingOutput()`
/// returns, and answers each delivered request with `respond(streamID:_:)`.
///
/// Unary calls are the norm. Paths in `Configuration.streamingPaths` are served as bidirectional
/// streams instead: each request message is delivered as it completes (`onStreamMessage`), the
/// owner sends any number of messages back (`sendStreamMessage`) and ends the call with
/// `finishStream` once the client has half-closed (`onStreamHalfClosed`). Server reflection is
/// the one user; it answers every request message with one response message.
///
/// Confinement: not thread-safe and not Sendable; the NIO glue uses it only on its channel's
/// event loop. nghttp2 callbacks reach this object through `user_data`, an unretained pointer
/// that is valid because the session is deleted in `deinit`.
public final class H2ServerSession {
    public struct Configuration: Sendable {
        /// SETTINGS_MAX_CONCURRENT_STREAMS.
        public var maxConcurrentStreams: UInt32 = 1000
        /// SETTINGS_MAX_HEADER_LIST_SIZE, also enforced on receipt (RFC 9113 size: name + value + 32).
        public var maxHeaderListSize: UInt32 = 16 * 1024
        /// Largest request message accepted; bigger is answered RESOURCE_EXHAUSTED.
        public var maxMessageSize: Int = 4 * 1024 * 1024
        /// SETTINGS_INITIAL_WINDOW_SIZE (per stream) and the connection window: large enough that
        /// a multi-MiB message does not stall on a window update per 64 KiB.
        public var initialWindowSize: UInt32 = 1 << 20
        public var connectionWindowSize: Int32 = 16 << 20
        /// Method paths served as bidirectional streams (see the type's documentation).
        public var streamingPaths: Set<String> = []
        /// Checked on a request's HEADERS, before any of its body is buffered: a status refuses the call (a
        /// missing token, say) with that status.
        public var authorize: (@Sendable (_ path: String, _ metadata: [(String, String)]) -> GRPCStatus?)?

        public init() {}
    }

    /// Called for every complete request, after `receive(_:)` has processed its input.
    public var onRequest: ((GRPCRequest) -> Void)?
    /// Called when a stream ends before it was answered (client reset, connection error), so the
    /// owner can cancel work it started for it.
    public var onStreamAbandoned: ((Int32) -> Void)?
    /// Called for every complete request message of a streaming call, in arrival order.
    public var onStreamMessage: ((GRPCRequest) -> Void)?
    /// Called when the client of a streaming call has sent its last message (END_STREAM).
    public var onStreamHalfClosed: ((Int32) -> Void)?

    public let configuration: Configuration
    let logger: Logger
    private var session: OpaquePointer!
    private var streams: [Int32: ServerStream] = [:]
    private var completed: [InboundEvent] = []
    private var shutdownState = ShutdownState.running
    private let allocator = ByteBufferAllocator()

    private enum ShutdownState { case running, noticeSent, goawaySubmitted }

    /// What `receive` completed, delivered in order once nghttp2 has processed the input.
    private enum InboundEvent {
        case request(GRPCRequest)
        case streamMessage(GRPCRequest)
        case streamHalfClosed(Int32)

        var streamID: Int32 {
            switch self {
            case .request(let r), .streamMessage(let r): r.streamID
            case .streamHalfClosed(let id): id
            }
        }
    }

    public init(configuration: Configuration = .init(), logger: Logger = Logger(label: "swift-dtm.h2.server")) throws {
        self.configuration = configuration
        self.logger = logger
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        Self.installCallbacks(callbacks)
        var session: OpaquePointer?
        let rv = nghttp2_session_server_new(&session, callbacks, Unmanaged.passUnretained(self).toOpaque())
        guard rv == 0, let session else { throw H2SessionError(code: rv, operation: "nghttp2_session_server_new") }
        self.session = session
        try submitSettings(
            session,
            [
                (NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, configuration.maxConcurrentStreams),
                (NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, configuration.maxHeaderListSize),
                (NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, configuration.initialWindowSize),
            ], connectionWindowSize: configuration.connectionWindowSize)
    }

    deinit {
        nghttp2_session_del(session)
    }

    // MARK: - I/O

    /// Processes received bytes, then delivers the requests they completed to `onRequest`.
    /// Throws on a connection-level protocol error; flush `pendingOutput()` (it holds nghttp2's
    /// GOAWAY) and close the connection.
    public func receive(_ buffer: ByteBuffer) throws {
        try buffer.withUnsafeReadableBytes { try feedSession(session, $0) }
        deliverCompleted()
    }

    public func receive(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try feedSession(session, $0) }
        deliverCompleted()
    }

    /// Bytes to write to the peer, or nil; at most about `limit` bytes per call (pass a limit to
    /// interleave writes with back-pressure checks).
    public func pendingOutput(limit: Int = .max) throws -> ByteBuffer? {
        try drainSessionOutput(session, allocator: allocator, limit: limit)
    }

    /// False once the connection has nothing left to do (after GOAWAY with no open streams, or a
    /// fatal error): the owner closes it after flushing.
    public var isActive: Bool {
        nghttp2_session_want_read(session) != 0 || nghttp2_session_want_write(session) != 0
    }

    public var openStreamCount: Int { streams.count }

    /// True once the client's first SETTINGS frame arrived (its handshake is complete).
    public private(set) var hasReceivedPeerSettings = false

    // MARK: - Responses

    /// Answers a request. OK responses are HEADERS, DATA (prefixed message), trailers; errors are a
    /// single trailers-only HEADERS frame. Answers for streams that are gone are dropped.
    public func respond(streamID: Int32, _ response: GRPCResponse) {
        guard let stream = streams[streamID], !stream.responded else { return }
        stream.responded = true
        if response.status.code != .ok {
            submitTrailersOnly(stream, httpStatus: H2Names.status200, status: response.status, metadata: response.metadata)
            return
        }
        stream.responseBody = GRPCFraming.frame(response.message)
        stream.trailerStatus = response.status
        submitResponseHeaders(stream, metadata: response.metadata)
    }

    /// Sends one message on a streaming call (response HEADERS go out with the first).
    public func sendStreamMessage(streamID: Int32, _ message: [UInt8]) {
        guard let stream = streams[streamID], stream.isStreaming, !stream.responded else { return }
        if stream.responseOffset > 0 {
            stream.responseBody.removeFirst(stream.responseOffset)
            stream.responseOffset = 0
        }
        stream.responseBody.append(contentsOf: GRPCFraming.frame(message))
        if !stream.headersSent {
            submitResponseHeaders(stream, metadata: [])
        } else {
            resumeDeferredBody(stream)
        }
    }

    /// Ends a streaming call with `status` after the messages already sent (trailers-only if none).
    public func finishStream(streamID: Int32, _ status: GRPCStatus) {
        guard let stream = streams[streamID], stream.isStreaming, !stream.responded else { return }
        stream.responded = true
        guard stream.headersSent else {
            submitTrailersOnly(stream, httpStatus: H2Names.status200, status: status, metadata: [])
            return
        }
        stream.trailerStatus = status
        resumeDeferredBody(stream)
    }

    /// Answers every unary request still being received that began before `cutoff` with CANCELLED and
    /// stops reading it: a client dripping a request cannot hold a stream (and its buffer) for ever. A streaming
    /// call is cut off the same way when no message of it arrived since `cutoff`: it may stay open as long as it
    /// keeps asking, not for ever in silence. Returns how many were cut off.
    @discardableResult
    public func expireIncompleteRequests(beganBefore cutoff: NIODeadline, timeout: Duration) -> Int {
        var expired = 0
        for stream in streams.values where !stream.remoteClosed && !stream.responded && stream.lastActivity < cutoff {
            if stream.isStreaming {
                finishStream(streamID: stream.id, GRPCStatus(.cancelled, "no message within \(timeout)"))
            } else {
                reject(stream, httpStatus: "200", GRPCStatus(.cancelled, "request not received completely within \(timeout) of its headers"))
            }
            expired += 1
        }
        return expired
    }

    /// Starts a graceful shutdown: GOAWAY notice (last id 2^31-1), a PING, and on its ACK the final
    /// GOAWAY naming the last stream we processed. Open streams finish; new ones are refused.
    public func beginGracefulShutdown() {
        guard shutdownState == .running else { return }
        shutdownState = .noticeSent
        // Without the notice or the PING whose ACK ends the wait, the final GOAWAY goes out at once instead.
        guard succeeded(nghttp2_submit_shutdown_notice(session), "nghttp2_submit_shutdown_notice"),
            succeeded(nghttp2_submit_ping(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil), "nghttp2_submit_ping")
        else {
            submitFinalGoaway()
            return
        }
    }

    /// Immediate final GOAWAY (used when the peer never acknowledges the PING).
    public func submitFinalGoaway() {
        guard shutdownState != .goawaySubmitted else { return }
        shutdownState = .goawaySubmitted
        let rv = nghttp2_submit_goaway(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(session),
            UInt32(NGHTTP2_NO_ERROR.rawValue), nil, 0)
        // The session is failing; the connection handler closes the connection when its grace period ends.
        _ = succeeded(rv, "nghttp2_submit_goaway")
    }

    /// True when `rv` is 0; otherwise logs the failed nghttp2 call.
    private func succeeded(_ rv: Int32, _ operation: String, stream: Int32? = nil) -> Bool {
        guard rv != 0 else { return true }
        var metadata: Logger.Metadata = ["operation": "\(operation)", "error": "\(String(cString: nghttp2_strerror(rv)))"]
        if let stream { metadata["stream"] = "\(stream)" }
        logger.warning("nghttp2 call failed", metadata: metadata)
        return false
    }

    /// A stream whose answer could not be submitted is reset with INTERNAL_ERROR, so the client learns at once
    /// instead of waiting for its deadline.
    private func resetAfterFailedResponse(_ rv: Int32, stream: ServerStream, _ operation: String) {
        guard !succeeded(rv, operation, stream: stream.id) else { return }
        _ = succeeded(
            nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id, UInt32(NGHTTP2_INTERNAL_ERROR.rawValue)),
            "nghttp2_submit_rst_stream", stream: stream.id)
    }

    // MARK: - nghttp2 callbacks

    private static func installCallbacks(_ cbs: OpaquePointer?) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs) { _, frame, userData in
            serverSession(userData).onBeginHeaders(frame!)
        }
        nghttp2_session_callbacks_set_on_header_callback(cbs) { _, frame, name, namelen, value, valuelen, _, userData in
            serverSession(userData).onHeader(frame!, name: name, namelen: namelen, value: value, valuelen: valuelen)
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs) { _, frame, userData in
            serverSession(userData).onFrameRecv(frame!)
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs) { _, _, streamID, data, len, userData in
            serverSession(userData).onDataChunk(streamID: streamID, UnsafeRawBufferPointer(start: data, count: len))
        }
        nghttp2_session_callbacks_set_on_frame_send_callback(cbs) { _, frame, userData in
            serverSession(userData).onFrameSend(frame!)
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs) { _, streamID, _, userData in
            serverSession(userData).onStreamClose(streamID)
        }
    }

    private func onBeginHeaders(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        guard hd.type == UInt8(NGHTTP2_HEADERS.rawValue), frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST else { return 0 }
        streams[hd.stream_id] = ServerStream(id: hd.stream_id, maxMessageSize: configuration.maxMessageSize, began: .now())
        return 0
    }

    private func onHeader(
        _ frame: UnsafePointer<nghttp2_frame>, name: UnsafePointer<UInt8>?, namelen: Int,
        value: UnsafePointer<UInt8>?, valuelen: Int
    ) -> Int32 {
        guard let stream = streams[frame.pointee.hd.stream_id] else { return 0 }
        stream.headerListSize += namelen + valuelen + 32
        if stream.headerListSize > Int(configuration.maxHeaderListSize) {
            // Resets the stream (RST_STREAM INTERNAL_ERROR); what grpc-go does for an oversized header list.
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
        }
        let nameBytes = UnsafeBufferPointer(start: name, count: namelen)
        if nameBytes.first == UInt8(ascii: ":") {
            // Only :path becomes a String; :method is compared as bytes, :scheme/:authority unused.
            if nameBytes.elementsEqual(H2Names.path) {
                stream.path = String(h2Bytes: value, count: valuelen)
            } else if nameBytes.elementsEqual(H2Names.method) {
                stream.isPost = UnsafeBufferPointer(start: value, count: valuelen).elementsEqual(H2Names.post)
            }
            return 0
        }
        let value = String(h2Bytes: value, count: valuelen)
        if frame.pointee.headers.cat != NGHTTP2_HCAT_REQUEST { return 0 }  // request trailers: ignored
        if nameBytes.elementsEqual(H2Names.contentType) {
            stream.contentType = value
        } else if nameBytes.elementsEqual(H2Names.grpcTimeout) {
            stream.timeout = GRPCTimeout.parse(value)
        }
        stream.metadata.append((String(h2Bytes: name, count: namelen), value))
        return 0
    }

    private func onFrameRecv(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        switch UInt32(hd.type) {
        case NGHTTP2_HEADERS.rawValue:
            guard let stream = streams[hd.stream_id] else { return 0 }
            if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST { validateRequestHeaders(stream) }
            if hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0 { requestEnded(stream) }
        case NGHTTP2_DATA.rawValue:
            guard let stream = streams[hd.stream_id] else { return 0 }
            if hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0 { requestEnded(stream) }
        case NGHTTP2_SETTINGS.rawValue:
            if hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) == 0 { hasReceivedPeerSettings = true }
        case NGHTTP2_PING.rawValue:
            if hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0, shutdownState == .noticeSent { submitFinalGoaway() }
        default:
            break
        }
        return 0
    }

    private func validateRequestHeaders(_ stream: ServerStream) {
        defer { if let path = stream.path, !stream.responded { stream.isStreaming = configuration.streamingPaths.contains(path) } }
        guard let contentType = stream.contentType, isGRPCContentType(contentType) else {
            // grpc-go answers a non-gRPC content-type with HTTP 415 carrying grpc-status INTERNAL.
            reject(stream, httpStatus: "415", GRPCStatus(.internal, "invalid gRPC request content-type \"\(stream.contentType ?? "")\""))
            return
        }
        if !stream.isPost {
            reject(stream, httpStatus: "405", GRPCStatus(.internal, "invalid gRPC request method (gRPC requires POST)"))
            return
        }
        if stream.path == nil {
            reject(stream, httpStatus: "200", GRPCStatus(.unimplemented, "missing :path"))
            return
        }
        if let authorize = configuration.authorize, let path = stream.path, let refusal = authorize(path, stream.metadata) {
            reject(stream, httpStatus: "200", refusal)
            return
        }
        if let timeout = stream.timeout { stream.deadline = .now() + TimeAmount(timeout) }
    }

    private func onDataChunk(streamID: Int32, _ data: UnsafeRawBufferPointer) -> Int32 {
        guard let stream = streams[streamID], !stream.responded else { return 0 }
        for event in stream.deframer.append(data) {
            switch event {
            case .message(let bytes) where stream.isStreaming:
                stream.lastActivity = .now()
                completed.append(
                    .streamMessage(
                        GRPCRequest(
                            streamID: stream.id, path: stream.path ?? "", metadata: stream.metadata, message: bytes,
                            timeout: stream.timeout, deadline: stream.deadline)))
            case .message(let bytes):
                if stream.message != nil {
                    reject(stream, httpStatus: "200", GRPCStatus(.internal, "grpc: too many request messages for unary RPC"))
                    return 0
                }
                stream.message = bytes
            case .compressed:
                reject(stream, httpStatus: "200", GRPCStatus(.unimplemented, "grpc: compressed messages are not supported (no grpc-encoding negotiated)"))
            case .tooLarge(let length):
                reject(
                    stream, httpStatus: "200",
                    GRPCStatus(
                        .resourceExhausted,
                        "grpc: received message larger than max (\(length) vs. \(configuration.maxMessageSize))"))
            }
        }
        return 0
    }

    private func requestEnded(_ stream: ServerStream) {
        stream.remoteClosed = true
        guard !stream.responded else { return }
        if stream.isStreaming, !stream.deframer.hasPartialMessage {
            completed.append(.streamHalfClosed(stream.id))
            return
        }
        guard let message = stream.message, !stream.deframer.hasPartialMessage else {
            reject(stream, httpStatus: "200", GRPCStatus(.internal, "grpc: request stream ended without a complete message"))
            return
        }
        stream.message = nil
        completed.append(
            .request(
                GRPCRequest(
                    streamID: stream.id, path: stream.path ?? "", metadata: stream.metadata, message: message,
                    timeout: stream.timeout, deadline: stream.deadline)))
        stream.metadata = []
    }

    private func onFrameSend(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        // An early error answered before the client finished sending: reset our interest in the
        // rest of its request (grpc-go sends RST_STREAM NO_ERROR here too).
        if hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0, let stream = streams[hd.stream_id], !stream.remoteClosed {
            _ = succeeded(
                nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), hd.stream_id, UInt32(NGHTTP2_NO_ERROR.rawValue)),
                "nghttp2_submit_rst_stream", stream: hd.stream_id)
        }
        return 0
    }

    private func onStreamClose(_ streamID: Int32) -> Int32 {
        if let stream = streams.removeValue(forKey: streamID), !stream.responded {
            completed.removeAll { $0.streamID == streamID }
            onStreamAbandoned?(streamID)
        }
        return 0
    }

    private func readResponseBody(
        streamID: Int32, into buf: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let stream = streams[streamID] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        let n = min(length, stream.responseBody.count - stream.responseOffset)
        if n > 0 {
            stream.responseBody.withUnsafeBufferPointer {
                buf.update(from: $0.baseAddress! + stream.responseOffset, count: n)
            }
            stream.responseOffset += n
        }
        if stream.responseOffset == stream.responseBody.count {
            stream.responseBody = []
            stream.responseOffset = 0
            if stream.isStreaming, !stream.responded {
                // More messages may follow: park the stream until sendStreamMessage/finishStream.
                if n > 0 { return n }
                stream.bodyDeferred = true
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
            flags.pointee |= UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
            let status = stream.trailerStatus ?? .ok
            var trailers = [H2Header(name: H2Names.grpcStatus, value: String(status.code.rawValue))]
            if !status.message.isEmpty {
                trailers.append(H2Header(name: H2Names.grpcMessage, value: GRPCMessageEncoding.encode(status.message)))
            }
            let rv = withNVArray(trailers) { nghttp2_submit_trailer(session, streamID, $0, $1) }
            if rv == 0 { flags.pointee |= UInt32(NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue) }
        }
        return n
    }

    // MARK: - Helpers

    /// Response HEADERS (:status 200, gRPC content-type, `metadata`) with the stream's body
    /// (`responseBody`, then trailers) as the data source.
    private func submitResponseHeaders(_ stream: ServerStream, metadata: [(String, String)]) {
        stream.headersSent = true
        var headers = [
            H2Header(name: H2Names.status, value: H2Names.status200),
            H2Header(name: H2Names.contentType, value: H2Names.applicationGRPC),
        ]
        for (name, value) in metadata { headers.append(H2Header(name.lowercased(), value)) }
        var provider = nghttp2_data_provider()
        provider.read_callback = { session, streamID, buf, length, flags, _, userData in
            Unmanaged<H2ServerSession>.fromOpaque(userData!).takeUnretainedValue()
                .readResponseBody(streamID: streamID, into: buf!, length: length, flags: flags!)
        }
        let rv = withNVArray(headers) { nghttp2_submit_response(session, stream.id, $0, $1, &provider) }
        resetAfterFailedResponse(rv, stream: stream, "nghttp2_submit_response")
    }

    private func resumeDeferredBody(_ stream: ServerStream) {
        guard stream.bodyDeferred else { return }
        stream.bodyDeferred = false
        _ = succeeded(nghttp2_session_resume_data(session, stream.id), "nghttp2_session_resume_data", stream: stream.id)
    }

    private func reject(_ stream: ServerStream, httpStatus: String, _ status: GRPCStatus) {
        guard !stream.responded else { return }
        stream.responded = true
        logger.debug("rejecting gRPC stream", metadata: ["stream": "\(stream.id)", "status": "\(status)"])
        submitTrailersOnly(stream, httpStatus: Array(httpStatus.utf8), status: status, metadata: [])
    }

    private func submitTrailersOnly(_ stream: ServerStream, httpStatus: [UInt8], status: GRPCStatus, metadata: [(String, String)]) {
        var headers = [
            H2Header(name: H2Names.status, value: httpStatus),
            H2Header(name: H2Names.contentType, value: H2Names.applicationGRPC),
            H2Header(name: H2Names.grpcStatus, value: String(status.code.rawValue)),
        ]
        if !status.message.isEmpty {
            headers.append(H2Header(name: H2Names.grpcMessage, value: GRPCMessageEncoding.encode(status.message)))
        }
        for (name, value) in metadata { headers.append(H2Header(name.lowercased(), value)) }
        let rv = withNVArray(headers) { nghttp2_submit_response(session, stream.id, $0, $1, nil) }
        resetAfterFailedResponse(rv, stream: stream, "nghttp2_submit_response (trailers-only)")
    }

    private func deliverCompleted() {
        guard !completed.isEmpty else { return }
        let ready = completed
        completed = []
        for event in ready {
            switch event {
            case .request(let request): onRequest?(request)
            case .streamMessage(let request): onStreamMessage?(request)
            case .streamHalfClosed(let streamID): onStreamHalfClosed?(streamID)
            }
        }
    }
}

/// The session behind an nghttp2 callback's `user_data` (a free function: a C callback may not
/// capture anything, not even `Self`).
private func serverSession(_ userData: UnsafeMutableRawPointer?) -> H2ServerSession {
    Unmanaged<H2ServerSession>.fromOpaque(userData!).takeUnretainedValue()
}

/// Per-stream state of the server session.
private final class ServerStream {
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

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        // Saturating: a peer may send "99999999H", which does not fit in Int64 nanoseconds.
        let nanos = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let total = nanos.partialValue.addingReportingOverflow(attoseconds / 1_000_000_000)
        self = .nanoseconds(nanos.overflow || total.overflow ? Int64.max : total.partialValue)
    }
}
