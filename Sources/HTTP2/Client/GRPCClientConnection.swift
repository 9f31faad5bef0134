package import Logging
package import NIOCore
import NIOPosix
package import NIOSSL
import Synchronization

/// One client HTTP/2 connection to one server, for a client that talks to few servers over long-lived streams (the
/// etcd client): unary calls and bidirectional-streaming calls (`GRPCClientStream`). Branch calls use
/// `GRPCConnectionPool` instead, which spreads unary calls over several connections per authority.
///
/// Received stream messages use manual flow control: bytes count as read when the stream's reader takes them, so a
/// reader that stops reading stops the server once the stream's window (`initialWindowSize`) is full.
package final class GRPCClientConnection: Sendable {
    package let authority: String
    private let channel: any Channel
    private let handler: NIOLoopBound<GRPCClientChannelHandler>
    private let usable: Arc<Atomic<Bool>>
    private let nextCallID = Atomic<UInt64>(0)

    private init(authority: String, channel: any Channel, handler: NIOLoopBound<GRPCClientChannelHandler>, usable: Arc<Atomic<Bool>>) {
        self.authority = authority
        self.channel = channel
        self.handler = handler
        self.usable = usable
    }

    /// Connects (h2c, or TLS with ALPN h2 when `tls` is given) and sends the connection preface. While calls are
    /// open, a PING goes out every `keepAlive`; one unanswered by the next closes the connection (a peer that
    /// vanished without closing it, as a crashed host or a cut network does, ends its streams too).
    package static func connect(
        host: String, port: Int, tls: NIOSSLContext? = nil, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        connectTimeout: Duration = .seconds(3), keepAlive: Duration? = .seconds(10), configuration: H2ClientSession.Configuration = .init(),
        logger: Logger
    ) async throws -> GRPCClientConnection {
        var sessionConfiguration = configuration
        sessionConfiguration.manualFlowControl = true
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let usable = Arc(Atomic(true))
        let serverHostname = GRPCConnectionPool.isIPLiteral(host) ? nil : host
        let channel = try await ClientBootstrap.grpcClient(
            on: group.next(), authority: authority, connectTimeout: connectTimeout, tls: tls, serverHostname: serverHostname,
            session: sessionConfiguration, logger: logger, onUnusable: { usable.value.store(false, ordering: .relaxed) }
        )
        .connect(host: host, port: port).get()
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: GRPCClientChannelHandler.self), eventLoop: channel.eventLoop)
        }.get()
        if let keepAlive {
            let period = TimeAmount(keepAlive)
            let task = channel.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { task in
                if !handler.value.keepAliveTick() { task.cancel() }
            }
            channel.closeFuture.whenComplete { _ in task.cancel() }
        }
        return GRPCClientConnection(authority: authority, channel: channel, handler: handler, usable: usable)
    }

    /// False once the connection received GOAWAY, failed or closed: open a new one.
    package var isUsable: Bool { usable.value.load(ordering: .relaxed) && channel.isActive }

    /// Completes when the connection has closed.
    package var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    /// One unary call. Never throws: transport failures come back as a status (UNAVAILABLE, DEADLINE_EXCEEDED, …).
    package func unary(path: String, metadata: [(String, String)] = [], message: [UInt8], timeout: Duration?) async -> GRPCCallResult {
        let id = nextCallID.add(1, ordering: .relaxed).newValue
        let handler = self.handler
        let loop = channel.eventLoop
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<GRPCCallResult, Never>) in
                loop.execute {
                    handler.value.start(
                        GRPCClientCall(
                            id: id, path: path, metadata: metadata, message: message, timeout: timeout,
                            completion: { continuation.resume(returning: $0) }))
                }
            }
        } onCancel: {
            loop.execute { handler.value.cancelCall(id: id) }
        }
    }

    /// Opens a bidirectional-streaming call. A stream that could not start is returned already finished (its
    /// `next()` answers nil at once and `result` says why).
    package func openStream(path: String, metadata: [(String, String)] = []) async -> GRPCClientStream {
        let stream = GRPCClientStream(handler: handler, eventLoop: channel.eventLoop)
        let handler = self.handler
        let opened: Void? = try? await channel.eventLoop.submit {
            let streamID = handler.value.startStream(
                path: path, metadata: metadata,
                onMessage: { message, wireBytes in stream.received(message, wireBytes: wireBytes) },
                completion: { stream.finished($0) })
            if let streamID { stream.started(streamID) }
        }.get()
        if opened == nil { stream.finished(GRPCCallResult(status: GRPCStatus(.unavailable, "connection to \(authority) is shut down"))) }
        return stream
    }

    package func close() async {
        try? await channel.close()
    }
}

/// A bidirectional-streaming call on a `GRPCClientConnection`. Any task may send; one task reads with `next()`.
/// Cancelling the reading task cancels the call (RST_STREAM CANCEL).
package final class GRPCClientStream: Sendable {
    private struct State {
        var streamID: Int32?
        var buffered: [(message: [UInt8], wireBytes: Int)] = []
        var head = 0
        var waiter: CheckedContinuation<[UInt8]?, Never>?
        var result: GRPCCallResult?
    }

    private let state = Mutex(State())
    private let handler: NIOLoopBound<GRPCClientChannelHandler>
    private let eventLoop: any EventLoop

    fileprivate init(handler: NIOLoopBound<GRPCClientChannelHandler>, eventLoop: any EventLoop) {
        self.handler = handler
        self.eventLoop = eventLoop
    }

    /// Messages received and not yet read (tests: the flow-control window bounds it).
    var bufferedCount: Int { state.withLock { $0.buffered.count - $0.head } }

    /// How the call ended; nil while it is open.
    package var result: GRPCCallResult? { state.withLock { $0.result } }

    /// Queues a request message. False when the call is over, its sending side is closed, or too much is already
    /// queued (the server is not reading).
    package func send(_ message: [UInt8]) async -> Bool {
        guard let streamID = state.withLock({ $0.result == nil ? $0.streamID : nil }) else { return false }
        let handler = self.handler
        return (try? await eventLoop.submit { handler.value.send(streamID: streamID, message: message) }.get()) ?? false
    }

    /// No more request messages (the server sees END_STREAM).
    package func closeSend() {
        guard let streamID = state.withLock({ $0.streamID }) else { return }
        let handler = self.handler
        eventLoop.execute { handler.value.closeSend(streamID: streamID) }
    }

    /// Ends the call now: RST_STREAM CANCEL; `next()` answers nil and `result` is CANCELLED. Messages received
    /// and not read are dropped.
    package func cancel() {
        let (streamID, open, unread) = state.withLock { state in
            let unread = state.buffered[state.head...].reduce(0) { $0 + $1.wireBytes }
            state.buffered = []
            state.head = 0
            return (state.streamID, state.result == nil, unread)
        }
        guard let streamID else { return }
        let handler = self.handler
        eventLoop.execute {
            if open { handler.value.cancel(streamID: streamID, status: GRPCStatus(.cancelled, "stream cancelled by the client")) }
            // Unread messages still hold the connection's window: give it back, or the connection stalls one day.
            handler.value.consume(streamID: streamID, bytes: unread)
        }
    }

    deinit {
        let unread = state.withLock { state in state.buffered[state.head...].reduce(0) { $0 + $1.wireBytes } }
        guard unread > 0, let streamID = state.withLock({ $0.streamID }) else { return }
        let handler = self.handler
        eventLoop.execute { handler.value.consume(streamID: streamID, bytes: unread) }
    }

    /// The next response message, or nil once the call has ended (then `result` is set).
    package func next() async -> [UInt8]? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[UInt8]?, Never>) in
                let taken: (message: [UInt8], wireBytes: Int, streamID: Int32?)?? = state.withLock { state in
                    if state.head < state.buffered.count {
                        let item = state.buffered[state.head]
                        state.head += 1
                        if state.head == state.buffered.count {
                            state.buffered.removeAll(keepingCapacity: true)
                            state.head = 0
                        }
                        return .some((item.message, item.wireBytes, state.streamID))
                    }
                    if state.result != nil { return .some(nil) }
                    state.waiter = continuation
                    return nil
                }
                switch taken {
                case .some(.some(let item)):
                    if let streamID = item.streamID { consumed(streamID: streamID, bytes: item.wireBytes) }
                    continuation.resume(returning: item.message)
                case .some(.none):
                    continuation.resume(returning: nil)
                case .none:
                    break  // a message or the end resumes it
                }
            }
        } onCancel: {
            cancel()
        }
    }

    private func consumed(streamID: Int32, bytes: Int) {
        let handler = self.handler
        eventLoop.execute { handler.value.consume(streamID: streamID, bytes: bytes) }
    }

    // MARK: - From the connection's event loop

    fileprivate func started(_ streamID: Int32) {
        state.withLock { $0.streamID = $0.streamID ?? streamID }
    }

    fileprivate func received(_ message: [UInt8], wireBytes: Int) {
        let (waiter, streamID) = state.withLock { state -> (CheckedContinuation<[UInt8]?, Never>?, Int32?) in
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, state.streamID)
            }
            state.buffered.append((message, wireBytes))
            return (nil, nil)
        }
        guard let waiter else { return }
        if let streamID { handler.value.consume(streamID: streamID, bytes: wireBytes) }
        waiter.resume(returning: message)
    }

    fileprivate func finished(_ result: GRPCCallResult) {
        let waiter = state.withLock { state -> CheckedContinuation<[UInt8]?, Never>? in
            state.result = state.result ?? result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }
}

/// A reference to a value, so that a closure made before an object exists can share state with it.
final class Arc<Value: ~Copyable & Sendable>: Sendable {
    let value: Value
    init(_ value: consuming Value) { self.value = value }
}
