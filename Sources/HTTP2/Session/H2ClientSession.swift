internal import CNghttp2
package import Logging
package import NIOCore

/// The client half of an HTTP/2 connection multiplexing gRPC calls, unary and bidirectional-streaming, around one
/// `nghttp2_session*`. I/O-free like `H2ServerSession`: feed `receive(_:)`, write
/// `pendingOutput()`, call `connectionClosed(_:)` when the transport goes away. Every call's
/// completion runs exactly once, never re-entrantly from inside nghttp2 (results are queued
/// while nghttp2 runs and delivered when `receive`/`pendingOutput`/`cancel` return).
///
/// Confinement: one thread (the connection's event loop); `user_data` is an unretained pointer
/// valid for the session's life because the session is deleted in `deinit`.
package final class H2ClientSession {
    package struct Configuration: Sendable {
        /// Largest response message accepted (grpc-go's client default is also 4 MiB).
        package var maxMessageSize: Int = 4 * 1024 * 1024
        package var maxHeaderListSize: UInt32 = 16 * 1024
        package var initialWindowSize: UInt32 = 1 << 20
        package var connectionWindowSize: Int32 = 16 << 20
        package var userAgent: String = "swift-dtm-grpc/1.0"
        /// When true, received DATA of a streaming call counts against the windows until its reader calls
        /// `consume(streamID:bytes:)`: a reader that falls behind stops the peer once the window is full, instead
        /// of messages piling up in memory. Unary responses are consumed as they arrive either way.
        package var manualFlowControl = false
        /// Most request bytes a streaming call may have queued and not yet sent (the peer's window decides how
        /// fast they leave); `send` refuses more.
        package var maxQueuedSendBytes = 4 * 1024 * 1024
        package init() {}
    }

    package typealias Completion = (GRPCCallResult) -> Void
    /// Receives each response message of a streaming call, with the bytes it took on the wire (what
    /// `consume(streamID:bytes:)` must be told once the message is processed, under manual flow control).
    package typealias MessageHandler = (_ message: [UInt8], _ wireBytes: Int) -> Void

    package let authority: String
    package let configuration: Configuration
    let logger: Logger
    private let session: OpaquePointer
    var calls: [Int32: H2ClientCall] = [:]
    var finished: [(Completion, GRPCCallResult)] = []
    /// Response messages of streaming calls, delivered (before any completion queued with them) once nghttp2 returns.
    var streamMessages: [(MessageHandler, [UInt8], Int)] = []
    var inCallback = 0
    private let allocator = ByteBufferAllocator()
    /// The pseudo-headers and headers every call of this session sends (all but `:path`, `grpc-timeout` and the
    /// metadata), made once rather than per call.
    private let constantPseudoHeaders: [H2Header]
    private let constantHeaders: [H2Header]
    /// The last `grpc-timeout` value and its encoding: calls mostly share one timeout.
    private var lastTimeout: (Duration, [UInt8])?
    /// PINGs sent (`ping()`) and acknowledged by the peer.
    private(set) var pingsSent = 0
    var pingsAcked = 0
    /// Last stream id the peer promised to process, once it sent GOAWAY.
    package internal(set) var goawayLastStreamID: Int32?
    private var closed = false

    package init(authority: String, configuration: Configuration = .init(), logger: Logger) throws {
        self.authority = authority
        self.configuration = configuration
        self.logger = logger
        self.constantPseudoHeaders = [
            H2Header(name: H2Names.method, value: H2Names.post),
            H2Header(name: H2Names.scheme, value: H2Names.http),
            H2Header(name: H2Names.authority, value: Array(authority.utf8)),
        ]
        self.constantHeaders = [
            H2Header(name: H2Names.contentType, value: H2Names.applicationGRPC),
            H2Header(name: H2Names.te, value: H2Names.trailers),
            H2Header("user-agent", configuration.userAgent),
        ]
        var callbacks: OpaquePointer?
        let created = nghttp2_session_callbacks_new(&callbacks)
        guard created == 0 else { throw H2SessionError(code: created, operation: "nghttp2_session_callbacks_new") }
        // nghttp2 passes every callback a non-null frame and the `user_data` given at creation: the `!`s cannot fail.
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, namelen, value, valuelen, _, userData in
            clientSession(userData).onHeader(frame!, name: name, namelen: namelen, value: value, valuelen: valuelen)
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, len, userData in
            clientSession(userData).onDataChunk(streamID: streamID, UnsafeRawBufferPointer(start: data, count: len))
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            clientSession(userData).onFrameRecv(frame!)
        }
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, userData in
            clientSession(userData).onFrameSend(frame!)
        }
        nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks) { _, frame, libError, userData in
            clientSession(userData).onFrameNotSend(frame!, libError)
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
            clientSession(userData).onStreamClose(streamID, errorCode: errorCode)
        }
        let session = try newSession(server: false, callbacks: callbacks, manualFlowControl: configuration.manualFlowControl)
        self.session = session
        nghttp2_session_set_user_data(session, Unmanaged.passUnretained(self).toOpaque())
        try submitSettings(
            session,
            [
                (NGHTTP2_SETTINGS_ENABLE_PUSH, 0),
                (NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, configuration.maxHeaderListSize),
                (NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, configuration.initialWindowSize),
            ], connectionWindowSize: configuration.connectionWindowSize)
    }

    deinit {
        nghttp2_session_del(session)
    }

    // MARK: - State

    /// Calls in flight.
    package var activeCallCount: Int { calls.count }

    /// False after GOAWAY, a fatal error or close: the pool must open a new connection.
    package var canStartCalls: Bool {
        !closed && goawayLastStreamID == nil && nghttp2_session_want_read(session) != 0
            && nghttp2_session_check_request_allowed(session) != 0
    }

    /// False once nothing is left to send or receive.
    package var isActive: Bool {
        !closed && (nghttp2_session_want_read(session) != 0 || nghttp2_session_want_write(session) != 0)
    }

    // MARK: - Calls

    /// Queues a unary call and returns its stream id, or nil when the call could not be started
    /// (then `completion` has already run with a retryable UNAVAILABLE).
    @discardableResult
    package func startCall(
        path: String, metadata: [(String, String)] = [], message: [UInt8], timeout: Duration? = nil,
        completion: @escaping Completion
    ) -> Int32? {
        guard canStartCalls else {
            completion(GRPCCallResult(status: GRPCStatus(.unavailable, "connection is not accepting new calls"), isTransparentlyRetryable: true))
            return nil
        }
        let headers = requestHeaders(path: path, metadata: metadata, timeout: timeout)
        return startRawCall(headers: headers, body: GRPCFraming.frame(message), completion: completion)
    }

    /// The request HEADERS of a gRPC call (pseudo-headers first, as HTTP/2 requires).
    func requestHeaders(path: String, metadata: [(String, String)], timeout: Duration?) -> [H2Header] {
        var headers: [H2Header] = []
        headers.reserveCapacity(constantPseudoHeaders.count + 1 + constantHeaders.count + 1 + metadata.count)
        headers += constantPseudoHeaders
        headers.append(H2Header(name: H2Names.path, value: path))
        headers += constantHeaders
        if let timeout {
            if lastTimeout?.0 != timeout { lastTimeout = (timeout, Array(GRPCTimeout.encode(timeout).utf8)) }
            headers.append(H2Header(name: H2Names.grpcTimeout, value: lastTimeout!.1))  // set on the line above
        }
        for (name, value) in metadata {
            // gRPC metadata keys are lower case; most already are (dtm-gid, …), and need no lowered copy.
            let lower = name.utf8.allSatisfy { $0 < UInt8(ascii: "A") || $0 > UInt8(ascii: "Z") }
            headers.append(H2Header(lower ? name : name.lowercased(), value))
        }
        return headers
    }

    /// Submits a request with exactly these headers and body bytes (already framed). Internal:
    /// tests use it to send what a well-behaved client never would.
    func startRawCall(headers: [H2Header], body: [UInt8], completion: @escaping Completion) -> Int32? {
        submit(H2ClientCall(completion: completion, body: body, maxMessageSize: configuration.maxMessageSize), headers: headers)
    }

    private func submit(_ call: H2ClientCall, headers: [H2Header]) -> Int32? {
        let completion = call.completion
        var provider = nghttp2_data_provider()
        provider.read_callback = { _, streamID, buf, length, flags, _, userData in
            clientSession(userData).readRequestBody(streamID: streamID, into: buf!, length: length, flags: flags!)
        }
        let streamID = withNVArray(headers) { nghttp2_submit_request(session, nil, $0, $1, &provider, nil) }
        guard streamID > 0 else {
            completion(
                GRPCCallResult(
                    status: GRPCStatus(.unavailable, "cannot start stream: \(String(cString: nghttp2_strerror(streamID)))"),
                    isTransparentlyRetryable: true))
            return nil
        }
        calls[streamID] = call
        return streamID
    }

    /// Opens a bidirectional-streaming call: HEADERS now, request messages with `send`, the end of them with
    /// `closeSend`. Each response message goes to `onMessage`; `completion` runs once, with the final status (OK
    /// carries no message: they went to `onMessage`). Returns the stream id, or nil when the call could not be
    /// started (then `completion` has already run with a retryable UNAVAILABLE).
    @discardableResult
    package func startStream(
        path: String, metadata: [(String, String)] = [], onMessage: @escaping MessageHandler, completion: @escaping Completion
    ) -> Int32? {
        guard canStartCalls else {
            completion(GRPCCallResult(status: GRPCStatus(.unavailable, "connection is not accepting new calls"), isTransparentlyRetryable: true))
            return nil
        }
        let call = H2ClientCall(completion: completion, body: [], maxMessageSize: configuration.maxMessageSize)
        call.onMessage = onMessage
        call.sendOpen = true
        return submit(call, headers: requestHeaders(path: path, metadata: metadata, timeout: nil))
    }

    /// Queues one request message of a streaming call. False when the call is gone, its sending side is closed, or
    /// `maxQueuedSendBytes` would be exceeded (the peer is not reading).
    @discardableResult
    package func send(streamID: Int32, message: [UInt8]) -> Bool {
        guard let call = calls[streamID], call.onMessage != nil, call.sendOpen else { return false }
        guard call.body.count - call.bodyOffset + message.count + GRPCFraming.prefixLength <= configuration.maxQueuedSendBytes else { return false }
        call.body += GRPCFraming.frame(message)
        return resumeSending(call, streamID: streamID)
    }

    /// Ends the request side of a streaming call (END_STREAM after the queued messages).
    package func closeSend(streamID: Int32) {
        guard let call = calls[streamID], call.sendOpen else { return }
        call.sendOpen = false
        _ = resumeSending(call, streamID: streamID)
    }

    /// Under manual flow control: `bytes` of stream `streamID` were processed, so the peer may send that much more.
    /// Also valid after the stream closed (the connection's window still needs the bytes back).
    package func consume(streamID: Int32, bytes: Int) {
        guard configuration.manualFlowControl, bytes > 0, !closed else { return }
        let rv = consumeReceived(session, streamID: streamID, connectionBytes: bytes, streamBytes: bytes)
        if rv != 0 {
            logger.debug("nghttp2_session_consume failed", metadata: ["error": "\(String(cString: nghttp2_strerror(rv)))"])
        }
    }

    /// A streaming call is gone: the bytes of a message it had only partly received will never reach a reader, so
    /// they go back to the connection's window now (the reader returns those it was handed).
    func releaseUnhandedBytes(of call: H2ClientCall, streamID: Int32) {
        guard call.onMessage != nil else { return }
        consume(streamID: streamID, bytes: call.receivedBytes - call.handedOverBytes)
        call.receivedBytes = call.handedOverBytes
    }

    private func resumeSending(_ call: H2ClientCall, streamID: Int32) -> Bool {
        guard call.deferred else { return true }
        call.deferred = false
        let rv = nghttp2_session_resume_data(session, streamID)
        if rv != 0 {
            logger.debug("nghttp2_session_resume_data failed", metadata: ["stream": "\(streamID)", "error": "\(String(cString: nghttp2_strerror(rv)))"])
            return false
        }
        return true
    }

    /// Sends a PING; false when nghttp2 refused it (the session is failing).
    package func ping() -> Bool {
        let rv = nghttp2_submit_ping(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
        guard rv == 0 else {
            logger.debug("nghttp2_submit_ping failed", metadata: ["authority": "\(authority)", "error": "\(String(cString: nghttp2_strerror(rv)))"])
            return false
        }
        pingsSent += 1
        return true
    }

    /// True while a PING has gone without its ACK.
    package var hasUnansweredPing: Bool { pingsAcked < pingsSent }

    /// Ends a call early (deadline, caller gave up): RST_STREAM CANCEL and complete it with `status`.
    package func cancel(streamID: Int32, status: GRPCStatus) {
        guard let call = calls.removeValue(forKey: streamID) else { return }
        releaseUnhandedBytes(of: call, streamID: streamID)
        let rv = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, UInt32(NGHTTP2_CANCEL.rawValue))
        if rv != 0 {
            logger.debug("nghttp2_submit_rst_stream failed", metadata: ["stream": "\(streamID)", "error": "\(String(cString: nghttp2_strerror(rv)))"])
        }
        finished.append((call.completion, GRPCCallResult(status: status, metadata: call.metadata)))
        deliverFinished()
    }

    // MARK: - I/O

    package func receive(_ buffer: ByteBuffer) throws {
        defer { deliverFinished() }
        try buffer.withUnsafeReadableBytes { try feedSession(session, $0) }
    }

    package func receive(_ bytes: [UInt8]) throws {
        defer { deliverFinished() }
        try bytes.withUnsafeBytes { try feedSession(session, $0) }
    }

    /// Bytes to write to the peer, or nil; at most about `limit` bytes per call.
    package func pendingOutput(limit: Int = .max) throws -> ByteBuffer? {
        defer { deliverFinished() }
        return try drainSessionOutput(session, allocator: allocator, limit: limit)
    }

    /// The transport is gone: every call still in flight fails with UNAVAILABLE. Calls whose
    /// HEADERS never left are marked transparently retryable.
    package func connectionClosed(_ reason: String) {
        closed = true
        let pending = calls
        calls = [:]
        for (_, call) in pending.sorted(by: { $0.key < $1.key }) {
            finished.append(
                (
                    call.completion,
                    GRPCCallResult(
                        status: GRPCStatus(.unavailable, "connection closed: \(reason)"), metadata: call.metadata,
                        isTransparentlyRetryable: !call.headersSent)
                ))
        }
        deliverFinished()
    }

    // MARK: - nghttp2 callbacks

    func onDataChunk(streamID: Int32, _ data: UnsafeRawBufferPointer) -> Int32 {
        guard let call = calls[streamID], call.error == nil else {
            consume(streamID: streamID, bytes: data.count)  // nobody will read it
            return 0
        }
        // Under manual flow control only streaming messages wait for their reader; everything else counts as read now.
        if call.onMessage == nil { consume(streamID: streamID, bytes: data.count) } else { call.receivedBytes += data.count }
        for event in call.deframer.append(data) {
            switch event {
            case .message(let bytes):
                if let onMessage = call.onMessage {
                    let wireBytes = bytes.count + GRPCFraming.prefixLength
                    call.handedOverBytes += wireBytes
                    streamMessages.append((onMessage, bytes, wireBytes))
                } else if call.response != nil {
                    call.error = GRPCStatus(.internal, "grpc: too many response messages for unary RPC")
                } else {
                    call.response = bytes
                }
            case .compressed:
                call.error = GRPCStatus(.internal, "grpc: compressed response without negotiated encoding")
            case .tooLarge(let length):
                call.error = GRPCStatus(
                    .resourceExhausted,
                    "grpc: received message larger than max (\(length) vs. \(configuration.maxMessageSize))")
            }
        }
        if call.error != nil {
            // Nothing more from this stream is useful; RST makes the server stop sending.
            let rv = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, UInt32(NGHTTP2_CANCEL.rawValue))
            if rv != 0 { return Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
        }
        return 0
    }

}

private func clientSession(_ userData: UnsafeMutableRawPointer?) -> H2ClientSession {
    Unmanaged<H2ClientSession>.fromOpaque(userData!).takeUnretainedValue()
}
