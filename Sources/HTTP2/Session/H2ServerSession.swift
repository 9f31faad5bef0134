internal import CNghttp2
package import Logging
package import NIOCore

/// The server half of an HTTP/2 connection carrying gRPC calls, around one `nghttp2_session*`.
/// I/O-free: the owner feeds received bytes with `receive(_:)`, writes what `pendingOutput()`
/// returns, and answers each delivered request with `respond(streamID:_:)`.
///
/// Unary calls are the norm. Paths in `Configuration.streamingPaths` are served as bidirectional
/// streams instead (H2ServerSession+Streaming.swift). Requests are checked by `GRPCRequestValidation`.
///
/// Confinement: not thread-safe and not Sendable; the NIO glue uses it only on its channel's
/// event loop. nghttp2 callbacks reach this object through `user_data`, an unretained pointer
/// that is valid because the session is deleted in `deinit`.
package final class H2ServerSession {
    package struct Configuration: Sendable {
        /// SETTINGS_MAX_CONCURRENT_STREAMS.
        package var maxConcurrentStreams: UInt32 = 1000
        /// SETTINGS_MAX_HEADER_LIST_SIZE, also enforced on receipt (RFC 9113 size: name + value + 32).
        package var maxHeaderListSize: UInt32 = 16 * 1024
        /// Largest request message accepted; bigger is answered RESOURCE_EXHAUSTED.
        package var maxMessageSize: Int = 4 * 1024 * 1024
        /// SETTINGS_INITIAL_WINDOW_SIZE: what a stream may send before it is admitted (small requests arrive whole).
        /// Flow control is manual (H2ServerSession+FlowControl.swift).
        package var initialWindowSize: UInt32 = 16 * 1024
        /// The window of a stream once admitted or authenticated, and the connection's receive window: what a peer
        /// can make a connection hold beyond its budget.
        package var admittedStreamWindowSize: UInt32 = 256 * 1024
        package var connectionWindowSize: Int32 = 256 * 1024
        /// Most bytes of open requests' messages one connection holds admitted at once
        /// (`GrpcMaxPendingBytesPerConnection`); at least `maxMessageSize` + 5, or a message of the largest size
        /// could never be admitted.
        package var maxPendingBytesPerConnection = 8 << 20
        /// The process-wide budget of the same (`GrpcMaxPendingBytes`): a server gives one to all its sessions.
        package var pendingBytes = PendingBytesBudget(limit: 64 << 20)
        /// Bytes of requests not admitted yet (each at most `initialWindowSize`) whose connection window may reopen
        /// regardless, so that streams waiting for room do not starve the admitted ones of the connection's window.
        package var unadmittedBytesPerConnection = 1 << 20
        /// Method paths served as bidirectional streams (see the type's documentation).
        package var streamingPaths: Set<String> = []
        /// Asked on a request's HEADERS, before any of its body is buffered: refuse it (a missing token, say), admit
        /// it as open (budgeted, optionally with a smaller message limit) or as authenticated. Without it every
        /// request is open.
        package var authorize: (@Sendable (_ path: String, _ metadata: [(String, String)]) -> GRPCAdmission)?

        package init() {}
    }

    /// Called for every complete request, after `receive(_:)` has processed its input.
    package var onRequest: ((GRPCRequest) -> Void)?
    /// Called when a stream ends before it was answered (client reset, connection error), so the
    /// owner can cancel work it started for it.
    package var onStreamAbandoned: ((Int32) -> Void)?
    /// Called for every complete request message of a streaming call, in arrival order.
    package var onStreamMessage: ((GRPCRequest) -> Void)?
    /// Called when the client of a streaming call has sent its last message (END_STREAM).
    package var onStreamHalfClosed: ((Int32) -> Void)?

    package let configuration: Configuration
    let logger: Logger
    /// nghttp2's session: only this file calls nghttp2 with it (the extensions go through the operations below).
    private let session: OpaquePointer
    var streams: [Int32: ServerStream] = [:]
    /// Request bytes admitted on this connection, and the open streams waiting for room (+FlowControl).
    var receiveBudget: ReceiveBudget
    var stalledStreams: Set<Int32> = []
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

    package init(configuration: Configuration = .init(), logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        self.receiveBudget = ReceiveBudget(
            connectionLimit: configuration.maxPendingBytesPerConnection, process: configuration.pendingBytes,
            unadmittedAllowance: configuration.unadmittedBytesPerConnection)
        var callbacks: OpaquePointer?
        let created = nghttp2_session_callbacks_new(&callbacks)
        guard created == 0 else { throw H2SessionError(code: created, operation: "nghttp2_session_callbacks_new") }
        defer { nghttp2_session_callbacks_del(callbacks) }
        Self.installCallbacks(callbacks)
        let session = try newSession(server: true, callbacks: callbacks, manualFlowControl: true)
        self.session = session
        nghttp2_session_set_user_data(session, Unmanaged.passUnretained(self).toOpaque())
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
        receiveBudget.releaseAll()  // the process budget outlives this connection
    }

    // MARK: - I/O

    /// Processes received bytes, then delivers the requests they completed to `onRequest`.
    /// Throws on a connection-level protocol error; flush `pendingOutput()` (it holds nghttp2's
    /// GOAWAY) and close the connection.
    package func receive(_ buffer: ByteBuffer) throws {
        try buffer.withUnsafeReadableBytes { try feedSession(session, $0) }
        deliverCompleted()
    }

    package func receive(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try feedSession(session, $0) }
        deliverCompleted()
    }

    /// Bytes to write to the peer, or nil; at most about `limit` bytes per call (pass a limit to
    /// interleave writes with back-pressure checks).
    package func pendingOutput(limit: Int = .max) throws -> ByteBuffer? {
        try drainSessionOutput(session, allocator: allocator, limit: limit)
    }

    /// False once the connection has nothing left to do (after GOAWAY with no open streams, or a
    /// fatal error): the owner closes it after flushing.
    package var isActive: Bool {
        nghttp2_session_want_read(session) != 0 || nghttp2_session_want_write(session) != 0
    }

    package var openStreamCount: Int { streams.count }

    /// True once the client's first SETTINGS frame arrived (its handshake is complete).
    package private(set) var hasReceivedPeerSettings = false

    /// Starts a graceful shutdown: GOAWAY notice (last id 2^31-1), a PING, and on its ACK the final
    /// GOAWAY naming the last stream we processed. Open streams finish; new ones are refused.
    package func beginGracefulShutdown() {
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
    package func submitFinalGoaway() {
        guard shutdownState != .goawaySubmitted else { return }
        shutdownState = .goawaySubmitted
        let rv = nghttp2_submit_goaway(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(session),
            UInt32(NGHTTP2_NO_ERROR.rawValue), nil, 0)
        // The session is failing; the connection handler closes the connection when its grace period ends.
        _ = succeeded(rv, "nghttp2_submit_goaway")
    }

    // MARK: - nghttp2 callbacks

    /// nghttp2 passes every callback a non-null frame and the `user_data` given at creation: the `!`s cannot fail.
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

    private func onDataChunk(streamID: Int32, _ data: UnsafeRawBufferPointer) -> Int32 {
        bytesArrived(data.count, streamID: streamID)
        guard let stream = streams[streamID], !stream.responded else { return 0 }
        defer { settleReceipt(stream) }
        for event in stream.deframer.append(data) {
            switch event {
            case .message(let bytes) where stream.isStreaming:
                stream.lastActivity = .now()
                messageHandedOn(stream, wireLength: GRPCFraming.prefixLength + bytes.count)
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
                        "grpc: received message larger than max (\(length) vs. \(stream.deframer.maxMessageSize))"))
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
        releaseRequestBytes(stream)
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
        guard let stream = streams.removeValue(forKey: streamID) else { return 0 }
        releaseRequestBytes(stream)
        if !stream.responded {
            completed.removeAll { $0.streamID == streamID }
            onStreamAbandoned?(streamID)
        }
        return 0
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
func serverSession(_ userData: UnsafeMutableRawPointer?) -> H2ServerSession {
    Unmanaged<H2ServerSession>.fromOpaque(userData!).takeUnretainedValue()
}

// MARK: - nghttp2 operations of the extensions (each returns nghttp2's code, checked by the caller)

extension H2ServerSession {
    func submitRstStream(_ streamID: Int32, _ code: nghttp2_error_code) -> Int32 {
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, UInt32(code.rawValue))
    }

    func submitTrailer(_ streamID: Int32, _ trailers: [H2Header]) -> Int32 {
        withNVArray(trailers) { nghttp2_submit_trailer(session, streamID, $0, $1) }
    }

    /// Response HEADERS; with `body`, the stream's body (`readResponseBody`) is the data source.
    func submitResponse(_ streamID: Int32, _ headers: [H2Header], body: Bool) -> Int32 {
        guard body else { return withNVArray(headers) { nghttp2_submit_response(session, streamID, $0, $1, nil) } }
        var provider = nghttp2_data_provider()
        // nghttp2 always passes the buffer, the flags and the session's `user_data`.
        provider.read_callback = { session, streamID, buf, length, flags, _, userData in
            serverSession(userData).readResponseBody(streamID: streamID, into: buf!, length: length, flags: flags!)
        }
        return withNVArray(headers) { nghttp2_submit_response(session, streamID, $0, $1, &provider) }
    }

    func resumeData(_ streamID: Int32) -> Int32 { nghttp2_session_resume_data(session, streamID) }

    func setLocalWindowSize(_ streamID: Int32, _ window: Int32) -> Int32 {
        nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, window)
    }

    func consume(_ streamID: Int32, connectionBytes: Int, streamBytes: Int) -> Int32 {
        consumeReceived(session, streamID: streamID, connectionBytes: connectionBytes, streamBytes: streamBytes)
    }
}
