package import Logging
package import NIOCore
import NIOPosix
import Synchronization

/// Limits of the lean branch HTTP client.
package struct HTTP1PoolConfiguration: Sendable {
    /// Connections per host:port (connecting, busy and idle together); further callers wait in FIFO order.
    package var maxConnectionsPerHost = 512
    /// An idle connection is closed after this long unused (checked every `idleTimeout / 4`, at most 5 s).
    package var idleTimeout: TimeAmount = .seconds(60)
    /// Longest TCP connect (further bounded by the call's own deadline).
    package var connectTimeout: TimeAmount = .seconds(3)
    /// How much of an answer is kept; the rest is read and dropped.
    package var maxResponseBody = 64 * 1024

    package init() {}
}

/// Keep-alive HTTP/1.1 connections per host:port for plain `http://` branch calls, one request in flight per
/// connection (no pipelining).
///
/// Ownership: every connection counted in `open` is owned by exactly one party — a caller (connecting or with a
/// request in flight) or the idle list. Whoever holds it when it goes away gives its slot back: the caller via
/// `release`, the idle list via the close callback or the idle sweep. A freed slot or a released connection goes to
/// the first waiter.
///
/// Retry: a request on a *reused* connection that fails before any byte of the response arrived (the connection
/// was closed before the request was handed to it, the write failed, or EOF/reset came first) is sent once more on
/// a new connection. That is the keep-alive race — the server closed an idle connection as we picked it. It is not
/// strictly "nothing was processed" (a server could read a request and die before answering), but DTM branches
/// must be idempotent and the coordinator retries every failed branch call anyway, so the retry only saves a cron
/// round. Nothing is retried after a response byte, after a deadline, or on a fresh connection.
package final class HTTP1ConnectionPool: Sendable {
    enum Lease: Sendable {
        case reuse(HTTP1Connection)
        /// The caller owns a free slot and must connect (or give the slot back).
        case connect
    }

    private struct Idle: Sendable {
        var connection: HTTP1Connection
        var since: NIODeadline
    }

    private struct Waiter: Sendable {
        var id: UInt64
        var continuation: CheckedContinuation<Lease, any Error>
        var timer: Scheduled<Void>?
    }

    private struct Host: Sendable {
        var idle: [Idle] = []
        var open = 0
        var waiters = CircularBuffer<Waiter>()
    }

    private struct State: Sendable {
        var hosts: [HTTP1Endpoint: Host] = [:]
        var nextWaiterID: UInt64 = 0
        var shutDown = false
        var sweeper: RepeatedTask?

        mutating func host<R>(_ endpoint: HTTP1Endpoint, _ body: (inout Host) -> R) -> R {
            body(&hosts[endpoint, default: Host()])
        }
    }

    let group: any EventLoopGroup
    let configuration: HTTP1PoolConfiguration
    private let logger: Logger
    private let state = Mutex(State())

    package init(group: any EventLoopGroup, configuration: HTTP1PoolConfiguration = .init(), logger: Logger) {
        self.group = group
        self.configuration = configuration
        self.logger = logger
        let every = TimeAmount.nanoseconds(min(configuration.idleTimeout.nanoseconds / 4, TimeAmount.seconds(5).nanoseconds))
        let sweeper = group.next().scheduleRepeatedTask(initialDelay: every, delay: every) { [weak self] _ in self?.sweepIdle() }
        state.withLock { $0.sweeper = sweeper }
    }

    /// Connections currently counted for `endpoint` (connecting, busy or idle). For tests and logs.
    func openConnections(to endpoint: HTTP1Endpoint) -> Int {
        state.withLock { $0.hosts[endpoint]?.open ?? 0 }
    }

    /// Sends `request` to `endpoint` on a pooled connection and returns the response; fails at `deadline`.
    func execute(_ request: HTTP1Request, to endpoint: HTTP1Endpoint, deadline: NIODeadline) async throws -> HTTP1Response {
        let connection: HTTP1Connection
        let reused: Bool
        switch try await lease(endpoint, deadline: deadline) {
        case .reuse(let c): (connection, reused) = (c, true)
        case .connect: (connection, reused) = (try await connect(endpoint, deadline: deadline), false)
        }
        do {
            let response = try await connection.execute(request, deadline: deadline)
            release(connection, to: endpoint, reusable: response.reusable)
            return response
        } catch let error as HTTP1ClientError where reused && error.mayRetry && NIODeadline.now() < deadline {
            // The keep-alive race (see the type's documentation): once, on a new connection in the same slot.
            connection.close()
            logger.debug(
                "branch connection closed by the server before answering; retrying once on a new connection",
                metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
            let fresh = try await connect(endpoint, deadline: deadline)
            do {
                let response = try await fresh.execute(request, deadline: deadline)
                release(fresh, to: endpoint, reusable: response.reusable)
                return response
            } catch {
                release(fresh, to: endpoint, reusable: false)
                throw error
            }
        } catch {
            release(connection, to: endpoint, reusable: false)
            throw error
        }
    }

    /// Closes idle connections, fails waiters and refuses new calls; busy connections close when released.
    package func shutdown() {
        let (idle, waiters, sweeper) = state.withLock { s in
            s.shutDown = true
            var idle: [HTTP1Connection] = []
            var waiters: [Waiter] = []
            for endpoint in s.hosts.keys {
                s.host(endpoint) { h in
                    idle += h.idle.map(\.connection)
                    h.open -= h.idle.count
                    h.idle.removeAll()
                    while let w = h.waiters.popFirst() { waiters.append(w) }
                }
            }
            defer { s.sweeper = nil }
            return (idle, waiters, s.sweeper)
        }
        sweeper?.cancel()
        for c in idle { c.close() }
        for w in waiters {
            w.timer?.cancel()
            w.continuation.resume(throwing: HTTP1ClientError.shutDown)
        }
    }

    // MARK: - Leases

    private func lease(_ endpoint: HTTP1Endpoint, deadline: NIODeadline) async throws -> Lease {
        let cap = configuration.maxConnectionsPerHost
        if let now = try state.withLock({ s in try Self.takeNow(&s, endpoint, cap: cap) }) { return now }
        let id = state.withLock { s in
            s.nextWaiterID &+= 1
            return s.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Lease, any Error>) in
                let timer = group.next().scheduleTask(deadline: deadline) { [weak self] () -> Void in
                    self?.abandonWaiter(id, endpoint, HTTP1ClientError.deadlineExceeded)
                }
                let now: Result<Lease, any Error>? = state.withLock { s in
                    do {
                        if let lease = try Self.takeNow(&s, endpoint, cap: cap) { return .success(lease) }
                    } catch {
                        return .failure(error)
                    }
                    s.host(endpoint) { $0.waiters.append(Waiter(id: id, continuation: continuation, timer: timer)) }
                    return nil
                }
                if let now {
                    timer.cancel()
                    continuation.resume(with: now)
                }
            }
        } onCancel: {
            // If this runs before the waiter is queued, the waiter stays until its deadline.
            self.abandonWaiter(id, endpoint, CancellationError())
        }
    }

    /// For a caller on an event loop: the most recently used idle connection of that loop, else a free slot (the
    /// caller connects on its loop), else any idle connection. For other callers: the most recently used idle
    /// connection, else a free slot. Nil when there is neither, or others already wait.
    private static func takeNow(_ s: inout State, _ endpoint: HTTP1Endpoint, cap: Int) throws -> Lease? {
        if s.shutDown { throw HTTP1ClientError.shutDown }
        let here = MultiThreadedEventLoopGroup.currentEventLoop
        return s.host(endpoint) { h -> Lease? in
            func reuse(_ pick: (Host) -> Int?) -> Lease? {
                while let i = pick(h) {
                    let idle = h.idle.remove(at: i)
                    if idle.connection.isActive { return .reuse(idle.connection) }
                    h.open -= 1  // it closed while idle; its close callback will not find it any more
                }
                return nil
            }
            if let here, let local = reuse({ $0.idle.lastIndex { $0.connection.channel.eventLoop === here } }) { return local }
            if here == nil, let any = reuse({ $0.idle.indices.last }) { return any }
            if h.open < cap && h.waiters.isEmpty {
                h.open += 1
                return .connect
            }
            return reuse { $0.idle.indices.last }
        }
    }

    private func abandonWaiter(_ id: UInt64, _ endpoint: HTTP1Endpoint, _ error: any Error) {
        let waiter: Waiter? = state.withLock { s in
            guard s.hosts[endpoint] != nil else { return nil }
            return s.host(endpoint) { h in
                guard let i = h.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return h.waiters.remove(at: i)
            }
        }
        guard let waiter else { return }
        waiter.timer?.cancel()
        waiter.continuation.resume(throwing: error)
    }

    /// Connects in a slot the caller owns; gives the slot back if that fails.
    private func connect(_ endpoint: HTTP1Endpoint, deadline: NIODeadline) async throws -> HTTP1Connection {
        do {
            let left = deadline - .now()
            guard left > .zero else { throw HTTP1ClientError.deadlineExceeded }
            // On the caller's loop when it has one, so that its calls and their answers stay on that thread.
            let connection = try await HTTP1Connection.connect(
                to: endpoint, group: MultiThreadedEventLoopGroup.currentEventLoop ?? group, timeout: min(left, configuration.connectTimeout),
                maxBody: configuration.maxResponseBody)
            connection.channel.closeFuture.whenComplete { [weak self] _ in self?.closedWhileIdle(connection, endpoint) }
            logger.debug("branch connection opened", metadata: ["endpoint": "\(endpoint)"])
            return connection
        } catch {
            giveBackSlot(endpoint)
            throw error
        }
    }

    /// Back to the first waiter or the idle list when `reusable`, else closed and its slot freed.
    private func release(_ connection: HTTP1Connection, to endpoint: HTTP1Endpoint, reusable: Bool) {
        let (keep, handoff): (Bool, (Waiter, Lease)?) = state.withLock { s in
            let keep = reusable && !s.shutDown && connection.isActive
            return s.host(endpoint) { h in
                if keep {
                    if let w = h.waiters.popFirst() { return (true, (w, .reuse(connection))) }
                    h.idle.append(Idle(connection: connection, since: .now()))
                    return (true, nil)
                }
                h.open -= 1
                return (false, Self.slotToWaiter(&h))
            }
        }
        if !keep { connection.close() }
        if let (waiter, lease) = handoff { Self.resume(waiter, lease) }
    }

    private func giveBackSlot(_ endpoint: HTTP1Endpoint) {
        let handoff = state.withLock { s in
            s.host(endpoint) { h in
                h.open -= 1
                return Self.slotToWaiter(&h)
            }
        }
        if let (waiter, lease) = handoff { Self.resume(waiter, lease) }
    }

    /// A connection's close callback: only a connection still in the idle list is this callback's to account for.
    private func closedWhileIdle(_ connection: HTTP1Connection, _ endpoint: HTTP1Endpoint) {
        let (found, handoff): (Bool, (Waiter, Lease)?) = state.withLock { s in
            guard s.hosts[endpoint] != nil else { return (false, nil) }
            return s.host(endpoint) { h in
                guard let i = h.idle.firstIndex(where: { $0.connection === connection }) else { return (false, nil) }
                h.idle.remove(at: i)
                h.open -= 1
                return (true, Self.slotToWaiter(&h))
            }
        }
        if found { logger.debug("idle branch connection closed by the server", metadata: ["endpoint": "\(endpoint)"]) }
        if let (waiter, lease) = handoff { Self.resume(waiter, lease) }
    }

    /// A slot just freed goes to the first waiter, who connects in it.
    private static func slotToWaiter(_ h: inout Host) -> (Waiter, Lease)? {
        guard let w = h.waiters.popFirst() else { return nil }
        h.open += 1
        return (w, .connect)
    }

    private static func resume(_ waiter: Waiter, _ lease: Lease) {
        waiter.timer?.cancel()
        waiter.continuation.resume(returning: lease)
    }

    /// Closes connections idle for `idleTimeout` and forgets hosts with no connection left.
    private func sweepIdle() {
        let now = NIODeadline.now()
        let timeout = configuration.idleTimeout
        let expired: [HTTP1Connection] = state.withLock { s in
            var expired: [HTTP1Connection] = []
            for endpoint in s.hosts.keys {
                let empty = s.host(endpoint) { h -> Bool in
                    let old = h.idle.filter { $0.since + timeout <= now }
                    if !old.isEmpty {
                        expired += old.map(\.connection)
                        h.idle.removeAll { $0.since + timeout <= now }
                        h.open -= old.count
                    }
                    return h.open == 0 && h.waiters.isEmpty
                }
                if empty { s.hosts[endpoint] = nil }
            }
            return expired
        }
        for c in expired { c.close() }
        if !expired.isEmpty { logger.debug("idle branch connections closed", metadata: ["count": "\(expired.count)"]) }
    }
}
