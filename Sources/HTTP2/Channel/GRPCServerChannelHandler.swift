import EventLoopSupport
import Logging
import NIOCore

/// Sent down a server connection's pipeline (`triggerUserOutboundEvent`) to start a graceful
/// shutdown of that connection.
package struct GRPCServerShutdownEvent: Sendable {
    package init() {}
}

/// Glue between one accepted TCP connection and its `H2ServerSession`: bytes in → session,
/// session output → channel. Requests run in their own `Task` on the async handler, preferring this
/// channel's event loop as executor, so that the answer is given on the loop, the only place the session
/// is touched, without a hop (answers from elsewhere hop back with `execute`). Back-pressure: output is drained only while the channel is writable, and reads are
/// held while it is not, so a slow reader cannot make us buffer unboundedly.
final class GRPCServerChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    /// Bytes drained from nghttp2 per write, between writability checks.

    private let session: H2ServerSession
    private let handler: GRPCServer.Handler
    private let streamHandlers: [String: GRPCServer.StreamMessageHandler]
    private let shutdownGracePeriod: TimeAmount
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var tasks: [Int32: Task<Void, Never>] = [:]
    /// Runs the request handlers on this connection's event loop (see `EventLoopTaskExecutor`).
    private var executor: EventLoopTaskExecutor?
    /// Deadlines (grpc-timeout) of the requests in flight, by stream id.
    private var deadlines: DeadlineQueue<Int32>?
    private var glue = SessionChannelGlue()
    private lazy var passFlush = PassFlush { [weak self] in self?.flushOutput() }
    private let timeouts: Timeouts
    private var sweep: RepeatedTask?
    /// When bytes last arrived; the handshake counts as done once the peer's first SETTINGS did.
    private var lastRead = NIODeadline.now()
    private var handshakeDone = false

    struct Timeouts {
        var requestRead: Duration
        var idle: Duration?
    }
    private var closing = false

    init(
        session: H2ServerSession, handler: @escaping GRPCServer.Handler,
        streamHandlers: [String: GRPCServer.StreamMessageHandler] = [:], shutdownGracePeriod: TimeAmount,
        timeouts: Timeouts = Timeouts(requestRead: .seconds(30), idle: nil), logger: Logger
    ) {
        self.timeouts = timeouts
        self.session = session
        self.handler = handler
        self.streamHandlers = streamHandlers
        self.shutdownGracePeriod = shutdownGracePeriod
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        executor = EventLoopTaskExecutor(eventLoop: context.eventLoop)
        let deadlines = DeadlineQueue<Int32>(eventLoop: context.eventLoop)
        deadlines.onExpired = { [unowned self] streamID in
            // The client gives up at its deadline anyway; answering frees the stream and the cancelled
            // handler's late answer is dropped. Stream ids are never reused on a connection, so an id whose
            // task is gone was answered in time.
            guard let task = self.finishStream(streamID) else { return }
            task.cancel()
            self.session.respond(streamID: streamID, .error(.deadlineExceeded, "deadline exceeded"))
            self.flushOutput()
        }
        self.deadlines = deadlines
        session.onRequest = { [unowned self] request in self.dispatch(request) }
        session.onStreamAbandoned = { [unowned self] streamID in self.finishStream(streamID)?.cancel() }
        session.onStreamMessage = { [unowned self] request in self.answerStreamMessage(request) }
        session.onStreamHalfClosed = { [unowned self] streamID in self.session.finishStream(streamID: streamID, .ok) }
        if context.channel.isActive { flushOutput() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelAll()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        flushOutput()  // our SETTINGS
        startSweep(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        sweep?.cancel()
        sweep = nil
        cancelAll()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        lastRead = .now()
        do {
            try session.receive(buffer)
            if !handshakeDone { handshakeDone = session.hasReceivedPeerSettings }
        } catch {
            logger.debug("HTTP/2 protocol error, closing connection", metadata: ["error": "\(error)"])
            flushOutput()
            close()
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

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is GRPCServerShutdownEvent else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        session.beginGracefulShutdown()
        flushOutput()
        // A peer that never acknowledges our PING, or streams whose handlers never answer,
        // must not hold the shutdown forever.
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: shutdownGracePeriod) {
            let me = loopBound.value
            me.session.submitFinalGoaway()
            me.flushOutput()
            me.close()
        }
        promise?.succeed()
    }

    // MARK: - Timeouts

    /// Once a second: cut off requests dripping in past the read timeout, admit requests that waited for room in
    /// the pending-bytes budget, close a connection whose handshake never finished, and send GOAWAY to one idle
    /// past the idle timeout.
    private func startSweep(_ context: ChannelHandlerContext) {
        guard sweep == nil else { return }
        let opened = NIODeadline.now()
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        sweep = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            let me = loopBound.value
            let now = NIODeadline.now()
            let readTimeout = TimeAmount(me.timeouts.requestRead)
            if !me.handshakeDone {
                if now - opened >= readTimeout {
                    me.logger.debug("closing a gRPC connection that did not finish its handshake in time")
                    me.close()
                }
                return
            }
            let expired = me.session.expireIncompleteRequests(beganBefore: now - readTimeout, timeout: me.timeouts.requestRead)
            // Room in the process's budget may have been freed by another connection since this one's last read.
            if expired > 0 || me.session.admitStalledStreams() { me.flushOutput() }
            if let idle = me.timeouts.idle, me.session.openStreamCount == 0, now - me.lastRead >= TimeAmount(idle) {
                me.logger.debug("closing an idle gRPC connection")
                me.session.beginGracefulShutdown()
                me.session.submitFinalGoaway()
                me.flushOutput()
                me.close()
            }
        }
    }

    // MARK: - Requests

    private func dispatch(_ request: GRPCRequest) {
        guard let context else { return }
        let eventLoop = context.eventLoop
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        let handler = self.handler
        let streamID = request.streamID
        var request = request
        request.taskExecutor = executor
        tasks[streamID] = Task(executorPreference: executor) { [request] in
            let response = await handler(request)
            if eventLoop.inEventLoop {
                loopBound.value.answer(streamID, response)
            } else {
                eventLoop.execute { loopBound.value.answer(streamID, response) }
            }
        }
        if let deadline = request.deadline { deadlines?.add(streamID, at: deadline) }
    }

    /// Streaming calls are answered inline: their handlers are synchronous, so the order of answers
    /// is the order of requests, and the output is flushed after the read that brought them.
    private func answerStreamMessage(_ request: GRPCRequest) {
        guard let handler = streamHandlers[request.path] else {
            session.finishStream(streamID: request.streamID, .unimplementedMethod(request.path))
            return
        }
        let response = handler(request)
        if response.status.code == .ok {
            session.sendStreamMessage(streamID: request.streamID, response.message)
        } else {
            session.finishStream(streamID: request.streamID, response.status)
        }
    }

    private func answer(_ streamID: Int32, _ response: GRPCResponse) {
        guard finishStream(streamID) != nil else { return }
        session.respond(streamID: streamID, response)
        scheduleFlush()
    }

    /// Forgets a stream's task; returns it if it was still pending.
    private func finishStream(_ streamID: Int32) -> Task<Void, Never>? {
        tasks.removeValue(forKey: streamID)
    }

    private func cancelAll() {
        for task in tasks.values { task.cancel() }
        tasks = [:]
        deadlines?.removeAll()
    }

    // MARK: - Output

    private func scheduleFlush() {
        guard let context else { return }
        passFlush.request(on: context.eventLoop)
    }

    private func flushOutput() {
        guard let context, !closing else { return }
        do {
            try SessionChannelGlue.writeOutput(context) { try session.pendingOutput(limit: $0) }
        } catch {
            logger.debug("nghttp2 send failed, closing connection", metadata: ["error": "\(error)"])
            close()
            return
        }
        if !session.isActive { close() }
    }

    private func close() {
        guard let context, !closing else { return }
        closing = true
        context.close(promise: nil)
    }
}
