import EventLoopSupport
package import Logging
package import NIOCore
import NIOPosix
package import NIOSSL
import Synchronization

/// Client connections for unary gRPC calls, a few per authority (`host:port`), h2c with prior
/// knowledge. A call made on an event loop (a task preferring an `EventLoopTaskExecutor`) goes to a
/// connection of that loop, so that neither the call nor its answer changes threads; other calls go to
/// the connection with the fewest calls in flight. A new connection is opened, on the caller's loop if
/// it has one, when that loop has none or its connections are full (`callsPerConnection`), while the
/// per-authority limit allows. Connections that received GOAWAY or closed are dropped and replaced on
/// the next call; a call that provably never reached the server (refused stream, GOAWAY, failed
/// connect) is retried once, elsewhere.
package final class GRPCConnectionPool: Sendable {
    package struct Configuration: Sendable {
        /// Most connections to one authority; nil: one per event loop of the group, and at least 2.
        package var connectionsPerAuthority: Int?
        /// Calls in flight on a connection before another one is opened beside it on the same loop (nghttp2
        /// servers allow 100 concurrent streams by default; HTTP/2 multiplexes the rest).
        package var callsPerConnection = 100
        package var connectTimeout: Duration = .seconds(3)
        /// A connection with no call for this long is closed, and an authority left without connections is
        /// forgotten (checked every quarter of it, at most every 5 s): transactions naming many hosts cannot
        /// pile up connections and pool entries.
        package var idleTimeout: Duration = .seconds(60)
        package var session = H2ClientSession.Configuration()
        /// The client TLS context of `grpcs://` calls (trust roots, ALPN `h2`); nil: such calls fail.
        package var tls: NIOSSLContext?
        package init() {}
    }

    private let group: any EventLoopGroup
    private let configuration: Configuration
    private let logger: Logger
    private let state = Mutex(State())
    private let nextCallID = Atomic<UInt64>(0)
    private let connectionLimit: Int

    private struct State {
        var authorities: [String: [PooledConnection]] = [:]
        var nextID = 0
        var isShutdown = false
        var sweeper: RepeatedTask?
    }

    package init(
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, configuration: Configuration = .init(),
        logger: Logger
    ) {
        self.group = group
        self.configuration = configuration
        self.logger = logger
        self.connectionLimit = max(1, configuration.connectionsPerAuthority ?? max(2, Array(group.makeIterator()).count))
        let idle = TimeAmount(configuration.idleTimeout)
        let every = TimeAmount.nanoseconds(max(TimeAmount.milliseconds(100).nanoseconds, min(idle.nanoseconds / 4, TimeAmount.seconds(5).nanoseconds)))
        let sweeper = group.next().scheduleRepeatedTask(initialDelay: every, delay: every) { [weak self] _ in self?.sweepIdle() }
        state.withLock { $0.sweeper = sweeper }
    }

    /// Authorities with at least one pooled connection (for tests and logs).
    var authorityCount: Int { state.withLock { $0.authorities.count } }

    /// Closes connections unused for `idleTimeout` (and unusable ones without calls) and forgets authorities
    /// left without connections.
    private func sweepIdle() {
        let now = NIODeadline.now().uptimeNanoseconds
        let idle = UInt64(max(0, TimeAmount(configuration.idleTimeout).nanoseconds))
        let closing: [PooledConnection] = state.withLock { state in
            var closing: [PooledConnection] = []
            for (authority, list) in state.authorities {
                let (keep, drop) = list.reduce(into: ([PooledConnection](), [PooledConnection]())) { parts, c in
                    let quiet = c.inFlight.load(ordering: .relaxed) == 0
                    let unused = now &- c.lastUsed.load(ordering: .relaxed) >= idle
                    if quiet && (unused || !c.usable.load(ordering: .relaxed)) { parts.1.append(c) } else { parts.0.append(c) }
                }
                guard !drop.isEmpty else { continue }
                closing += drop
                state.authorities[authority] = keep.isEmpty ? nil : keep
            }
            return closing
        }
        for connection in closing {
            connection.usable.store(false, ordering: .relaxed)
            connection.channel.whenSuccess { $0.close(promise: nil) }
        }
        if !closing.isEmpty { logger.debug("idle gRPC branch connections closed", metadata: ["count": "\(closing.count)"]) }
    }

    /// Performs one unary call. Never throws: transport failures come back as a status
    /// (UNAVAILABLE, DEADLINE_EXCEEDED, …) like any other gRPC failure. Cancelling the calling
    /// task resets the stream and returns CANCELLED.
    package func unary(
        authority: String, path: String, metadata: [(String, String)] = [], message: [UInt8], timeout: Duration?, tls: Bool = false
    ) async -> GRPCCallResult {
        let target = Target(authority: authority, tls: tls)
        var result = await attempt(target, path: path, metadata: metadata, message: message, timeout: timeout)
        if result.isTransparentlyRetryable {
            logger.debug("retrying call that never reached the server", metadata: ["authority": "\(authority)", "path": "\(path)"])
            result = await attempt(target, path: path, metadata: metadata, message: message, timeout: timeout)
        }
        return result
    }

    /// Where a connection goes: an authority, over TLS or not. Its key tells the two apart in the pool.
    private struct Target {
        var authority: String
        var tls: Bool
        var key: String { tls ? "grpcs://" + authority : authority }
    }

    /// Closes every connection (calls in flight fail with UNAVAILABLE); later calls fail too.
    package func shutdown() async {
        let all = state.withLock { state in
            state.isShutdown = true
            state.sweeper?.cancel()
            defer { state.authorities = [:] }
            return state.authorities.values.flatMap { $0 }
        }
        for connection in all {
            if let channel = try? await connection.channel.get() { try? await channel.close() }
        }
    }

    // MARK: - Internals

    private func attempt(
        _ target: Target, path: String, metadata: [(String, String)], message: [UInt8], timeout: Duration?
    ) async -> GRPCCallResult {
        let authority = target.authority
        guard let connection = checkout(target) else {
            return GRPCCallResult(status: GRPCStatus(.unavailable, "connection pool is shut down"))
        }
        defer { checkin(connection) }
        let id = nextCallID.add(1, ordering: .relaxed).newValue
        if connection.eventLoop.inEventLoop, let handler = connection.handler, handler.acceptsCalls {
            return await directCall(handler, connection: connection, id: id, path: path, metadata: metadata, message: message, timeout: timeout)
        }
        let channel: any Channel
        do {
            channel = try await connection.channel.get()
        } catch {
            markUnusable(connection)
            return GRPCCallResult(
                status: GRPCStatus(.unavailable, "cannot connect to \(authority): \(error)"), isTransparentlyRetryable: true)
        }
        if Task.isCancelled { return GRPCCallResult(status: GRPCStatus(.cancelled, "call cancelled by the caller")) }
        let promise = channel.eventLoop.makePromise(of: GRPCCallResult.self)
        let call = GRPCClientCall(
            id: id, path: path, metadata: metadata, message: message, timeout: timeout, completion: { promise.succeed($0) })
        let result = await withTaskCancellationHandler {
            channel.writeAndFlush(call).whenFailure { error in
                // The write never reached our handler (channel already closed), so the promise
                // is still ours to complete.
                promise.succeed(
                    GRPCCallResult(
                        status: GRPCStatus(.unavailable, "connection to \(authority) closed: \(error)"),
                        isTransparentlyRetryable: true))
            }
            return (try? await promise.futureResult.get())
                ?? GRPCCallResult(status: GRPCStatus(.unknown, "call promise failed"))
        } onCancel: {
            channel.triggerUserOutboundEvent(GRPCClientCancelEvent(id: id), promise: nil)
        }
        // A GOAWAY or close already marked the connection unusable (handler's onUnusable); a
        // refused stream alone leaves it usable, as grpc-go does.
        return result
    }

    /// A call from a task running on the connection's own event loop (the usual case: rounds prefer the loop
    /// their request came in on, and the pool picks a connection of that loop): handed to the handler
    /// directly, and the task resumes from the handler's completion, with no promise, future or pipeline write.
    private func directCall(
        _ handler: GRPCClientChannelHandler, connection: PooledConnection, id: UInt64, path: String,
        metadata: [(String, String)], message: [UInt8], timeout: Duration?
    ) async -> GRPCCallResult {
        if Task.isCancelled { return GRPCCallResult(status: GRPCStatus(.cancelled, "call cancelled by the caller")) }
        let channel = connection.channel
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                handler.start(
                    GRPCClientCall(
                        id: id, path: path, metadata: metadata, message: message, timeout: timeout,
                        completion: { continuation.resume(returning: $0) }))
            }
        } onCancel: {
            channel.whenSuccess { $0.triggerUserOutboundEvent(GRPCClientCancelEvent(id: id), promise: nil) }
        }
    }

    /// The event loops of the usable connections to `authority`, in the order they were opened.
    func connectionLoops(_ authority: String) -> [any EventLoop] {
        state.withLock { $0.authorities[authority, default: []].filter { $0.usable.load(ordering: .relaxed) }.map(\.eventLoop) }
    }

    /// Picks (or starts) a connection for `target` and counts the call against it.
    private func checkout(_ target: Target) -> PooledConnection? {
        let authority = target.key
        let here = MultiThreadedEventLoopGroup.currentEventLoop
        let (picked, isNew) = state.withLock { state -> (PooledConnection?, Bool) in
            guard !state.isShutdown else { return (nil, false) }
            // In place, without filtered copies (two allocations per call): unusable connections are dropped only
            // when there is one, which is rare.
            var list = state.authorities[authority, default: []]
            if list.contains(where: { !$0.usable.load(ordering: .relaxed) }) {
                list.removeAll { !$0.usable.load(ordering: .relaxed) }
                state.authorities[authority] = list
            }
            var local: PooledConnection?
            var any: PooledConnection?
            for c in list {
                let n = c.inFlight.load(ordering: .relaxed)
                if any.map({ n < $0.inFlight.load(ordering: .relaxed) }) ?? true { any = c }
                if let here, c.eventLoop === here, local.map({ n < $0.inFlight.load(ordering: .relaxed) }) ?? true { local = c }
            }
            let full = list.count >= connectionLimit
            func hasRoom(_ c: PooledConnection?) -> Bool {
                c.map { $0.inFlight.load(ordering: .relaxed) < configuration.callsPerConnection } ?? false
            }
            // A busy connection of this loop beats an idle one elsewhere: the answer resumes the caller here.
            let pick: PooledConnection? =
                if let local, full || hasRoom(local) { local } else if full || (here == nil && hasRoom(any)) { any } else { nil }
            if let pick {
                pick.inFlight.add(1, ordering: .relaxed)
                return (pick, false)
            }
            state.nextID += 1
            let loop = here ?? group.next()
            let connection = PooledConnection(id: state.nextID, promise: loop.makePromise(of: (any Channel).self))
            connection.inFlight.add(1, ordering: .relaxed)
            list.append(connection)
            state.authorities[authority] = list
            return (connection, true)
        }
        if let picked, isNew { connect(picked, to: target) }
        return picked
    }

    private func checkin(_ connection: PooledConnection) {
        connection.lastUsed.store(NIODeadline.now().uptimeNanoseconds, ordering: .relaxed)
        connection.inFlight.subtract(1, ordering: .relaxed)
    }

    private func markUnusable(_ connection: PooledConnection) {
        connection.usable.store(false, ordering: .relaxed)
    }

    private func connect(_ connection: PooledConnection, to target: Target) {
        let authority = target.authority
        guard let (host, port) = Self.splitAuthority(authority) else {
            connection.promise.fail(GRPCStatus(.unavailable, "bad authority '\(authority)'"))
            return
        }
        var tls: NIOSSLContext?
        if target.tls {
            guard let context = configuration.tls else {
                connection.promise.fail(GRPCStatus(.unavailable, "grpcs:// to \(authority): no TLS client configuration"))
                return
            }
            tls = context
        }
        // SNI and name checks use the host name; an IP literal is checked against the certificate's IP addresses.
        let serverHostname = Self.isIPLiteral(host) ? nil : host
        let sessionConfig = configuration.session
        let logger = self.logger
        let bootstrap = ClientBootstrap.grpcClient(
            on: connection.promise.futureResult.eventLoop, authority: authority, connectTimeout: configuration.connectTimeout,
            tls: tls, serverHostname: serverHostname, session: sessionConfig, logger: logger,
            onUnusable: { [connection] in connection.usable.store(false, ordering: .relaxed) },
            handlerAdded: { [connection] in connection.handler = $0 })
        connection.promise.completeWith(bootstrap.connect(host: host, port: port))
    }

    static func isIPLiteral(_ host: String) -> Bool {
        host.contains(":") || host.utf8.allSatisfy { ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: ".") }
    }

    /// `host:port`, `[v6]:port`.
    package static func splitAuthority(_ authority: String) -> (String, Int)? {
        guard let colon = authority.lastIndex(of: ":"), let port = Int(authority[authority.index(after: colon)...]) else {
            return nil
        }
        var host = String(authority[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }
}

/// One pooled connection. Sendable: the channel future is Sendable, the counters are atomics and the handler
/// is touched on the connection's event loop only.
private final class PooledConnection: Sendable {
    let id: Int
    let promise: EventLoopPromise<any Channel>
    var channel: EventLoopFuture<any Channel> { promise.futureResult }
    var eventLoop: any EventLoop { promise.futureResult.eventLoop }
    let inFlight = Atomic<Int>(0)
    let usable = Atomic<Bool>(true)
    /// When the last call ended (uptime nanoseconds), for the idle sweep.
    let lastUsed = Atomic<UInt64>(NIODeadline.now().uptimeNanoseconds)
    /// The connection's handler, for calls made on its event loop. Written once by the channel initializer
    /// and read only after `eventLoop.inEventLoop` was checked: both on the loop, so never concurrently.
    nonisolated(unsafe) var handler: GRPCClientChannelHandler?

    init(id: Int, promise: EventLoopPromise<any Channel>) {
        self.id = id
        self.promise = promise
    }
}
