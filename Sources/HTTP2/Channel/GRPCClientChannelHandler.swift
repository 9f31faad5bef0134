import EventLoopSupport
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// One unary call, written into a client connection's pipeline or started directly on its event loop
/// (`GRPCClientChannelHandler.start`). `completion` runs exactly once, on the connection's event loop, with
/// the call's outcome.
struct GRPCClientCall: Sendable {
    /// Pool-wide id, so a later `GRPCClientCancelEvent` can name the call.
    var id: UInt64
    var path: String
    var metadata: [(String, String)]
    var message: [UInt8]
    var timeout: Duration?
    var completion: @Sendable (GRPCCallResult) -> Void
}

/// Sent down a client connection's pipeline when the task awaiting call `id` was cancelled.
struct GRPCClientCancelEvent: Sendable {
    var id: UInt64
}

/// Glue between one client TCP connection and its `H2ClientSession`. Calls arrive as outbound
/// writes of `GRPCClientCall` (so callers on any thread use the ordinary, Sendable channel API);
/// everything else happens on the channel's event loop. Deadlines share one timer on that loop.
final class GRPCClientChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = GRPCClientCall
    typealias OutboundOut = ByteBuffer

    private let session: H2ClientSession
    private let logger: Logger
    /// Called once when the connection stops accepting calls (GOAWAY, error, close).
    private let onUnusable: @Sendable () -> Void
    private var reportedUnusable = false
    /// The first error the pipeline reported, named when the connection closes.
    private var closingError: String?
    private var context: ChannelHandlerContext?
    private var glue = SessionChannelGlue()
    private lazy var passFlush = PassFlush { [weak self] in self?.flushOutput() }
    /// Stream of each call in flight, by call id (for cancellation and deadlines).
    private var streamsByCall: [UInt64: Int32] = [:]
    /// Deadlines of the calls in flight, by call id.
    private var deadlines: DeadlineQueue<(call: UInt64, timeout: Duration)>?

    init(session: H2ClientSession, logger: Logger, onUnusable: @escaping @Sendable () -> Void) {
        self.session = session
        self.logger = logger
        self.onUnusable = onUnusable
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let deadlines = DeadlineQueue<(call: UInt64, timeout: Duration)>(eventLoop: context.eventLoop)
        deadlines.onExpired = { [unowned self] expired in
            guard let streamID = self.streamsByCall[expired.call] else { return }  // answered in time
            self.session.cancel(streamID: streamID, status: GRPCStatus(.deadlineExceeded, "deadline exceeded after \(expired.timeout)"))
            self.flushOutput()
        }
        self.deadlines = deadlines
        if context.channel.isActive { flushOutput() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        session.connectionClosed("handler removed")
        deadlines?.removeAll()
        deadlines = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        flushOutput()  // connection preface and SETTINGS
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The error that closed it, if any (a failed TLS handshake, say), is what the calls' failure should name.
        session.connectionClosed("connection to \(session.authority) closed" + (closingError.map { ": \($0)" } ?? ""))
        reportUnusable()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("client connection error", metadata: ["authority": "\(session.authority)", "error": "\(error)"])
        if closingError == nil { closingError = String("\(error)".prefix(512)) }
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            try session.receive(unwrapInboundIn(data))
        } catch {
            logger.debug("HTTP/2 protocol error from server", metadata: ["authority": "\(session.authority)", "error": "\(error)"])
            flushOutput()
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushOutput()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            flushOutput()
            glue.becameWritable(context)
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        glue.read(context)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        start(unwrapOutboundIn(data))
        promise?.succeed()
    }

    /// True while the connection is open and takes new calls: then `start` may be used on its event loop.
    var acceptsCalls: Bool {
        guard let context, context.channel.isActive else { return false }
        return session.canStartCalls
    }

    /// Starts `call`: from `write`, or directly from a task on this connection's event loop once `acceptsCalls`
    /// said yes (without the pipeline's write path: a promise, a future and a boxed write per call).
    func start(_ call: GRPCClientCall) {
        let id = call.id
        let completion = call.completion
        let streamID = session.startCall(path: call.path, metadata: call.metadata, message: call.message, timeout: call.timeout) { result in
            // Runs on this loop, from `receive`, `pendingOutput`, `cancel` or `connectionClosed` of the session this
            // handler owns; the strong capture lasts until then.
            self.streamsByCall[id] = nil
            completion(result)
        }
        if let streamID {
            streamsByCall[id] = streamID
            if let timeout = call.timeout { deadlines?.add((id, timeout), at: .now() + TimeAmount(timeout)) }
        }
        scheduleFlush()
    }

    // MARK: - Streaming calls (on the event loop; `GRPCClientConnection` calls these)

    func startStream(
        path: String, metadata: [(String, String)], onMessage: @escaping H2ClientSession.MessageHandler,
        completion: @escaping H2ClientSession.Completion
    ) -> Int32? {
        defer { scheduleFlush() }
        return session.startStream(path: path, metadata: metadata, onMessage: onMessage, completion: completion)
    }

    func send(streamID: Int32, message: [UInt8]) -> Bool {
        defer { scheduleFlush() }
        return session.send(streamID: streamID, message: message)
    }

    func closeSend(streamID: Int32) {
        session.closeSend(streamID: streamID)
        scheduleFlush()
    }

    func cancel(streamID: Int32, status: GRPCStatus) {
        session.cancel(streamID: streamID, status: status)
        flushOutput()
    }

    func consume(streamID: Int32, bytes: Int) {
        session.consume(streamID: streamID, bytes: bytes)
        scheduleFlush()  // a WINDOW_UPDATE may be due
    }

    /// One keep-alive period passed: a PING still unanswered from the last period means the peer (or the path to
    /// it) is gone without a word, so the connection is closed and its calls fail (a long-lived watch would
    /// otherwise wait for ever). PINGs go out only while calls are open: servers such as etcd count PINGs on an
    /// idle connection as abuse. Returns false once the connection is closed.
    func keepAliveTick() -> Bool {
        guard let context, context.channel.isActive else { return false }
        if session.hasUnansweredPing {
            logger.warning("no answer to PING within the keep-alive period; closing the connection", metadata: ["authority": "\(session.authority)"])
            if closingError == nil { closingError = "no answer to PING within the keep-alive period" }
            context.close(promise: nil)
            return false
        }
        if session.activeCallCount > 0, session.ping() { flushOutput() }
        return true
    }

    /// Cancels the unary call `id` (its caller gave up); unknown ids are calls already finished.
    func cancelCall(id: UInt64) {
        if let streamID = streamsByCall[id] {
            session.cancel(streamID: streamID, status: GRPCStatus(.cancelled, "call cancelled by the caller"))
            flushOutput()
        }
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let cancel = event as? GRPCClientCancelEvent else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        // Unknown id: the call already finished (or its write has not arrived yet; then its own
        // deadline ends it).
        cancelCall(id: cancel.id)
        promise?.succeed()
    }

    func flush(context: ChannelHandlerContext) {
        flushOutput()
    }

    private func scheduleFlush() {
        guard let context else { return }
        passFlush.request(on: context.eventLoop)
    }

    private func flushOutput() {
        guard let context else { return }
        do {
            try SessionChannelGlue.writeOutput(context) { try session.pendingOutput(limit: $0) }
        } catch {
            logger.debug("nghttp2 send failed", metadata: ["authority": "\(session.authority)", "error": "\(error)"])
            context.close(promise: nil)
            return
        }
        if !session.canStartCalls {
            reportUnusable()
            // After GOAWAY, the connection closes itself once its last call is done.
            if session.activeCallCount == 0, context.channel.isActive { context.close(promise: nil) }
        }
    }

    private func reportUnusable() {
        guard !reportedUnusable else { return }
        reportedUnusable = true
        onUnusable()
    }
}

extension ClientBootstrap {
    /// A bootstrap for one gRPC client connection to `authority`: TLS first when `tls` is given (SNI and name
    /// checks use `serverHostname`; nil for an IP literal), then the HTTP/2 session and its handler, which
    /// `handlerAdded` receives (on the channel's loop) and which calls `onUnusable` once the connection stops
    /// taking calls.
    static func grpcClient(
        on loop: any EventLoop, authority: String, connectTimeout: Duration, tls: NIOSSLContext?, serverHostname: String?,
        session configuration: H2ClientSession.Configuration, logger: Logger,
        onUnusable: @escaping @Sendable () -> Void, handlerAdded: @escaping @Sendable (GRPCClientChannelHandler) -> Void = { _ in }
    ) -> ClientBootstrap {
        ClientBootstrap(group: loop)
            .connectTimeout(TimeAmount(connectTimeout))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverHostname))
                    }
                    let session = try H2ClientSession(authority: authority, configuration: configuration, logger: logger)
                    let handler = GRPCClientChannelHandler(session: session, logger: logger, onUnusable: onUnusable)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    handlerAdded(handler)
                }
            }
    }
}
