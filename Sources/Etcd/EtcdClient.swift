package import HTTP2
package import Logging
package import NIOCore
import NIOPosix
package import NIOSSL
import Synchronization

/// Why an etcd operation failed.
package enum EtcdError: Error, CustomStringConvertible, Sendable {
    /// No configured host could be reached, or the connection broke: worth retrying later.
    case unavailable(String)
    /// etcd answered with an error status.
    case status(GRPCStatusCode, String)
    /// etcd's answer could not be read.
    case protocolError(String)

    package var description: String {
        switch self {
        case .unavailable(let m): "etcd unavailable: \(m)"
        case .status(let code, let m): "etcd error \(code): \(m)"
        case .protocolError(let m): "etcd protocol error: \(m)"
        }
    }
}

/// A client of one etcd cluster over etcd's v3 gRPC API, on the project's HTTP/2 stack: one connection at a time,
/// to the first configured host that answers (the next one after a failure), shared by unary calls and the
/// long-lived keep-alive and watch streams. With a user, it authenticates (`Auth/Authenticate`) on each new
/// connection and sends the token as metadata `token`; a token etcd no longer accepts is renewed once per call.
package final class EtcdClient: Sendable {
    package struct Configuration: Sendable {
        /// `host:port` of each member (IPv6 in brackets).
        package var hosts: [String]
        package var user = ""
        package var password = ""
        package var connectTimeout: Duration = .seconds(3)
        /// Deadline of each unary call.
        package var callTimeout: Duration = .seconds(5)
        /// TLS (trust roots, client certificate, ALPN `h2`) for every host of the cluster; nil: plain h2c.
        package var tls: NIOSSLContext?

        package init(hosts: [String], user: String = "", password: String = "", tls: NIOSSLContext? = nil) {
            self.hosts = hosts
            self.user = user
            self.password = password
            self.tls = tls
        }
    }

    /// Largest message accepted from etcd. A range answer holds at most `ServiceSubscriber.maxKeys` entries of
    /// a few hundred bytes each, far below it; more is refused before it is buffered (grpc-go's default too).
    package static let maxResponseSize = 4 * 1024 * 1024

    package let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state = Mutex(State())
    private let unaryInFlight = Atomic<Int>(0)

    private struct State {
        var connection: GRPCClientConnection?
        var token: String?
        /// The host tried first by the next connect.
        var nextHost = 0
        /// Set while one task connects; the others wait for it.
        var connecting: Task<(GRPCClientConnection, String?), any Error>?
        var closed = false
    }

    package init(configuration: Configuration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
    }

    /// The cluster's hosts joined by commas (logs).
    package var cluster: String { configuration.hosts.joined(separator: ",") }

    /// Unary calls under way (a client with none, and no stream in use, may be closed).
    package var callsInFlight: Int { unaryInFlight.load(ordering: .relaxed) }

    // MARK: - KV

    /// The keys starting with `prefix`, at most `limit` of them (0: all; `more` says some were left out), and the
    /// store revision they were read at.
    package func range(prefix: String, limit: Int64 = 0) async throws -> (revision: Int64, kvs: [EtcdKeyValue], more: Bool) {
        try await range(prefix: prefix, from: prefix, limit: limit, revision: 0)
    }

    /// The keys starting with `prefix` from `from` on (in key order), at most `limit` of them (0: all), as the store
    /// was at `revision` (0: now): one page of a read in several requests.
    package func range(
        prefix: String, from: String, limit: Int64, revision: Int64
    ) async throws -> (
        revision: Int64, kvs: [EtcdKeyValue], more: Bool
    ) {
        let request = try EtcdCodec.range(
            key: Array(from.utf8), rangeEnd: Self.prefixEnd(Array(prefix.utf8)), limit: max(limit, 0), revision: max(revision, 0))
        return try EtcdCodec.rangeResponse(try await unary("/etcdserverpb.KV/Range", request))
    }

    /// Puts `key` = `value`, attached to `lease` (0: none); returns the revision of the write.
    @discardableResult
    package func put(key: String, value: String, lease: Int64 = 0) async throws -> Int64 {
        try EtcdCodec.putResponse(try await unary("/etcdserverpb.KV/Put", try EtcdCodec.put(key: Array(key.utf8), value: Array(value.utf8), lease: lease)))
    }

    // MARK: - Leases

    /// A new lease of `ttl` seconds; returns its id.
    package func grantLease(ttl: Int64) async throws -> Int64 {
        let response = try EtcdCodec.leaseGrantResponse(try await unary("/etcdserverpb.Lease/LeaseGrant", try EtcdCodec.leaseGrant(ttl: ttl)))
        guard response.error.isEmpty, response.id != 0 else { throw EtcdError.status(.unknown, "lease not granted: \(response.error)") }
        return response.id
    }

    /// Revokes `id`: the keys attached to it are deleted at once.
    package func revokeLease(_ id: Int64) async throws {
        _ = try await unary("/etcdserverpb.Lease/LeaseRevoke", try EtcdCodec.leaseRevoke(id: id))
    }

    /// A `LeaseKeepAlive` stream: each `refresh` asks etcd to renew the lease, and `next` returns the TTL etcd
    /// granted (0 or less: the lease is gone).
    package func keepAliveStream() async throws -> EtcdKeepAliveStream {
        EtcdKeepAliveStream(stream: try await openStream("/etcdserverpb.Lease/LeaseKeepAlive"))
    }

    // MARK: - Watch

    /// Watches every key starting with `prefix` (exactly `prefix` when `exact`) for changes after `revision` (a
    /// revision etcd answered with). Returns once etcd confirmed the watch.
    package func watch(prefix: String, exact: Bool = false, after revision: Int64) async throws -> EtcdWatchStream {
        let key = Array(prefix.utf8)
        let stream = try await openStream("/etcdserverpb.Watch/Watch")
        let create = try EtcdCodec.watchCreate(
            key: key, rangeEnd: exact ? [] : Self.prefixEnd(key), startRevision: Self.revision(after: revision))
        guard await stream.send(create) else {
            stream.cancel()
            throw EtcdError.unavailable("watch stream closed before the watch was created: \(stream.result.map { "\($0.status)" } ?? "")")
        }
        let watch = EtcdWatchStream(stream: stream)
        let first = try await watch.nextResponse()
        guard first.created, !first.canceled else {
            stream.cancel()
            throw EtcdError.status(.unknown, "watch of '\(prefix)' not created: \(first.cancelReason)")
        }
        return watch
    }

    /// Closes the connection; later calls fail.
    package func close() async {
        let connection = state.withLock { state -> GRPCClientConnection? in
            state.closed = true
            state.connecting?.cancel()
            defer { state.connection = nil }
            return state.connection
        }
        await connection?.close()
    }

    // MARK: - Calls

    /// The revision after `revision`, which comes from etcd: saturated, never below 1 (0 would mean "from now").
    static func revision(after revision: Int64) -> Int64 {
        revision < .max ? max(revision, 0) + 1 : .max
    }

    /// The end of the key range holding every key that starts with `prefix` (etcd's `GetPrefixRangeEnd`).
    static func prefixEnd(_ prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0]  // every key
    }

    func unary(_ path: String, _ message: [UInt8]) async throws -> [UInt8] {
        unaryInFlight.add(1, ordering: .relaxed)
        defer { unaryInFlight.subtract(1, ordering: .relaxed) }
        var renewedToken = false
        var reconnected = false
        while true {
            let (connection, token) = try await connect()
            let result = await connection.unary(
                path: path, metadata: token.map { [("token", $0)] } ?? [], message: message, timeout: configuration.callTimeout)
            if result.isOK { return result.message }
            if Self.isInvalidToken(result.status), !renewedToken, token != nil {
                renewedToken = true
                forget(connection, tokenOnly: true)
                continue
            }
            if result.status.code == .unavailable, !reconnected {
                // The member went away (or is shutting down): once more, on a new connection.
                reconnected = true
                forget(connection, tokenOnly: false)
                continue
            }
            if result.status.code == .unavailable { throw EtcdError.unavailable("\(path): \(result.status.message)") }
            throw EtcdError.status(result.status.code, result.status.message)
        }
    }

    func openStream(_ path: String) async throws -> GRPCClientStream {
        let (connection, token) = try await connect()
        let stream = await connection.openStream(path: path, metadata: token.map { [("token", $0)] } ?? [])
        if let result = stream.result {
            forget(connection, tokenOnly: false)
            throw EtcdError.unavailable("\(path): \(result.status.message)")
        }
        return stream
    }

    static func isInvalidToken(_ status: GRPCStatus) -> Bool {
        status.code == .unauthenticated || status.message.contains("invalid auth token")
    }

    /// Drops `connection` (or only its token) so that the next call connects (or authenticates) again.
    private func forget(_ connection: GRPCClientConnection, tokenOnly: Bool) {
        let drop = state.withLock { state -> Bool in
            guard state.connection === connection else { return false }
            state.token = nil
            if tokenOnly { return false }
            state.connection = nil
            state.nextHost = (state.nextHost + 1) % max(1, configuration.hosts.count)
            return true
        }
        if drop { Task { await connection.close() } }
    }

    /// The current connection and token, connecting (and authenticating) first when there is none.
    private func connect() async throws -> (GRPCClientConnection, String?) {
        enum Step {
            case ready(GRPCClientConnection, String?)
            case wait(Task<(GRPCClientConnection, String?), any Error>)
        }
        let step: Step = try state.withLock { state in
            if state.closed { throw EtcdError.unavailable("client closed") }
            if let connection = state.connection, connection.isUsable, state.token != nil || configuration.user.isEmpty {
                return .ready(connection, state.token)
            }
            if let connecting = state.connecting { return .wait(connecting) }
            let reusable = state.connection.flatMap { $0.isUsable ? $0 : nil }
            let first = state.nextHost
            let task = Task { try await self.establish(reusing: reusable, startingAt: first) }
            state.connecting = task
            return .wait(task)
        }
        switch step {
        case .ready(let connection, let token):
            return (connection, token)
        case .wait(let task):
            // The connect task is shared: a caller that gives up does not cancel it for the others.
            let result = await task.result
            state.withLock { state in
                if state.connecting == task { state.connecting = nil }
                if case .success(let (connection, token)) = result, !state.closed {
                    state.connection = connection
                    state.token = token
                }
            }
            return try result.get()
        }
    }

    /// Connects to the hosts in turn, starting at `startingAt`, and authenticates when a user is configured.
    private func establish(reusing: GRPCClientConnection?, startingAt first: Int) async throws -> (GRPCClientConnection, String?) {
        let hosts = configuration.hosts
        var failures: [String] = []
        for offset in 0..<hosts.count {
            let index = (first + offset) % hosts.count
            let authority = hosts[index]
            do {
                let connection: GRPCClientConnection
                if let reusing, offset == 0 {
                    connection = reusing
                } else {
                    guard let (host, port) = GRPCConnectionPool.splitAuthority(authority) else {
                        throw EtcdError.unavailable("'\(authority)' is not host:port")
                    }
                    var session = H2ClientSession.Configuration()
                    session.maxMessageSize = Self.maxResponseSize
                    connection = try await GRPCClientConnection.connect(
                        host: host, port: port, tls: configuration.tls, group: group, connectTimeout: configuration.connectTimeout,
                        configuration: session, logger: logger)
                }
                var token: String?
                if !configuration.user.isEmpty {
                    let result = await connection.unary(
                        path: "/etcdserverpb.Auth/Authenticate",
                        message: try EtcdCodec.authenticate(name: configuration.user, password: configuration.password),
                        timeout: configuration.callTimeout)
                    guard result.isOK else {
                        await connection.close()
                        // Wrong credentials are not a host problem: say so at once rather than trying the next host.
                        if result.status.code != .unavailable {
                            throw EtcdError.status(result.status.code, "authentication as '\(configuration.user)' failed: \(result.status.message)")
                        }
                        throw EtcdError.unavailable(result.status.message)
                    }
                    token = try EtcdCodec.authenticateResponse(result.message)
                }
                state.withLock { $0.nextHost = index }
                if offset > 0 { logger.info("etcd connected", metadata: ["host": "\(authority)", "cluster": "\(cluster)"]) }
                return (connection, token)
            } catch let error as EtcdError {
                if case .status = error { throw error }
                failures.append("\(authority): \(error)")
            } catch {
                failures.append("\(authority): \(error)")
            }
        }
        state.withLock { $0.nextHost = (first + 1) % max(1, hosts.count) }
        throw EtcdError.unavailable("no etcd host answered (\(failures.joined(separator: "; ")))")
    }
}

/// A lease keep-alive stream (`Lease/LeaseKeepAlive`).
package struct EtcdKeepAliveStream: Sendable {
    let stream: GRPCClientStream

    /// Asks etcd to renew `lease`; false when the stream is closed.
    package func refresh(_ lease: Int64) async throws -> Bool {
        await stream.send(try EtcdCodec.leaseKeepAlive(id: lease))
    }

    /// The TTL etcd granted on the next renewal (0 or less: the lease expired or was revoked); throws when the
    /// stream ended.
    package func next() async throws -> Int64 {
        guard let message = await stream.next() else {
            throw EtcdError.unavailable("keep-alive stream ended: \(stream.result.map { "\($0.status)" } ?? "closed")")
        }
        return try EtcdCodec.leaseKeepAliveResponse(message).ttl
    }

    package func cancel() { stream.cancel() }
}

/// A watch stream (`Watch/Watch`) carrying one watch.
package struct EtcdWatchStream: Sendable {
    let stream: GRPCClientStream

    /// The next response with events; throws when the stream ended or etcd cancelled the watch (compaction, …).
    func nextResponse() async throws -> EtcdWatchResponse {
        guard let message = await stream.next() else {
            throw EtcdError.unavailable("watch stream ended: \(stream.result.map { "\($0.status)" } ?? "closed")")
        }
        let response = try EtcdCodec.watchResponse(message)
        if response.canceled && !response.created {
            throw EtcdError.unavailable("watch cancelled by etcd: \(response.cancelReason) (compact revision \(response.compactRevision))")
        }
        return response
    }

    /// The next batch of changes: (key, value) for a put, (key, nil) for a delete.
    package func next() async throws -> [(key: String, value: String?)] {
        try await nextResponse().events.map { ($0.kv.key, $0.type == .put ? $0.kv.value : nil) }
    }

    package func cancel() { stream.cancel() }
}
