import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Service discovery over etcd for many services and clusters: one `EtcdClient` per cluster (its hosts, in
/// order) and one watching `ServiceSubscriber` per service key, started by the first call that needs it. etcd is
/// not on the call path: calls read the watched sets.
///
/// Bounded: a watch no call used for `idleWatch` is stopped when the next service is watched (a branch URL that
/// stopped appearing does not keep its watch for ever); at most `maxClusters` clusters; at most `maxServices` watched
/// services, the least recently used one
/// stopped to make room. Credentials for a cluster come from `credentials` (a coordinator's own
/// `MicroService.Target`), since branch URLs carry none.
public final class EtcdDiscovery: Sendable {
    public static let maxClusters = 16
    public static let maxServices = 1024

    public struct Credentials: Sendable {
        public var user: String
        public var password: String
        public init(user: String, password: String) {
            self.user = user
            self.password = password
        }
    }

    private let group: any EventLoopGroup
    private let logger: Logger
    private let credentials: [String: Credentials]
    private let addressOf: @Sendable (String) -> String?
    private let idleWatch: Duration
    private let state = Mutex(State())

    private struct ServiceName: Hashable {
        var hosts: [String]
        var key: String
    }

    private struct State {
        var clients: [String: EtcdClient] = [:]
        var services: [ServiceName: (subscriber: ServiceSubscriber, task: Task<Void, Never>)] = [:]
        var closed = false
    }

    /// `credentials`: by cluster (hosts joined with commas, as `EtcdClient.cluster`). `addressOf` turns a registered
    /// value into the address to call, or nil to skip it.
    public init(
        credentials: [String: Credentials] = [:], addressOf: @escaping @Sendable (String) -> String?, idleWatch: Duration = .seconds(600),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) {
        self.credentials = credentials
        self.idleWatch = idleWatch
        self.addressOf = addressOf
        self.group = group
        self.logger = logger
    }

    /// The shared client of the cluster `hosts`; nil when `maxClusters` are already in use or discovery is shut down.
    public func client(hosts: [String]) -> EtcdClient? {
        let cluster = hosts.joined(separator: ",")
        return state.withLock { state in
            if state.closed { return nil }
            if let client = state.clients[cluster] { return client }
            guard state.clients.count < Self.maxClusters else { return nil }
            let c = credentials[cluster]
            let client = EtcdClient(
                configuration: .init(hosts: hosts, user: c?.user ?? "", password: c?.password ?? ""), group: group, logger: logger)
            state.clients[cluster] = client
            return client
        }
    }

    /// The addresses to try for one call to the service `key` of cluster `hosts`, best first; a failure says why
    /// none is known (the service is not registered yet, or etcd could not be read before the first answer).
    public func addresses(hosts: [String], key: String, limit: Int = .max) async -> Result<[String], ResolutionFailure> {
        let name = ServiceName(hosts: hosts, key: key)
        // The usual case: a watched service, read from memory.
        if let subscriber = state.withLock({ $0.services[name]?.subscriber }), subscriber.hasSettled {
            return Self.answer(subscriber, hosts: hosts, key: key, limit: limit)
        }
        let cluster = hosts.joined(separator: ",")
        guard let client = client(hosts: hosts) else {
            return .failure(ResolutionFailure(message: "etcd cluster \(cluster): discovery is shut down or already watches \(Self.maxClusters) clusters"))
        }
        let idleSince = ContinuousClock.now - idleWatch
        let (subscriber, isNew, evicted) = state.withLock { state -> (ServiceSubscriber?, Bool, [Task<Void, Never>]) in
            if state.closed { return (nil, false, []) }
            if let existing = state.services[name] { return (existing.subscriber, false, []) }
            var evicted: [Task<Void, Never>] = []
            for (other, service) in state.services where service.subscriber.lastUsed < idleSince {
                evicted.append(service.task)
                state.services[other] = nil
            }
            if state.services.count >= Self.maxServices,
                let oldest = state.services.min(by: { $0.value.subscriber.lastUsed < $1.value.subscriber.lastUsed })
            {
                evicted.append(oldest.value.task)
                state.services[oldest.key] = nil
            }
            let subscriber = ServiceSubscriber(client: client, key: key, addressOf: addressOf, logger: logger)
            state.services[name] = (subscriber, Task { await subscriber.run() })
            return (subscriber, true, evicted)
        }
        for task in evicted { task.cancel() }
        if !evicted.isEmpty { logger.debug("etcd watches stopped", metadata: ["count": "\(evicted.count)"]) }
        guard let subscriber else { return .failure(ResolutionFailure(message: "discovery is shut down")) }
        if isNew { logger.info("watching service in etcd", metadata: ["key": "\(key)/", "cluster": "\(cluster)"]) }
        // Every caller that arrives before the first read waits for it, not only the one that started the watch.
        await subscriber.waitForFirstRead()
        return Self.answer(subscriber, hosts: hosts, key: key, limit: limit)
    }

    private static func answer(_ subscriber: ServiceSubscriber, hosts: [String], key: String, limit: Int) -> Result<[String], ResolutionFailure> {
        let addresses = subscriber.addresses(limit: limit)
        if addresses.isEmpty {
            let why = subscriber.lastError.map { "; etcd: \($0)" } ?? ""
            return .failure(
                ResolutionFailure(
                    message: "no address registered under '\(key)/' in etcd \(hosts.joined(separator: ","))\(why)"))
        }
        return .success(addresses)
    }

    /// Services watched now (tests).
    var watchedServiceCount: Int { state.withLock { $0.services.count } }

    /// A call could not reach `address` of service `key`: it is tried last for a while.
    public func markFailed(hosts: [String], key: String, address: String) {
        state.withLock { $0.services[ServiceName(hosts: hosts, key: key)]?.subscriber }?.markFailed(address)
    }

    /// Stops every watch and closes the clients.
    public func shutdown() async {
        let (tasks, clients) = state.withLock { state -> ([Task<Void, Never>], [EtcdClient]) in
            state.closed = true
            defer {
                state.services = [:]
                state.clients = [:]
            }
            return (state.services.values.map(\.task), Array(state.clients.values))
        }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        for client in clients { await client.close() }
    }
}

/// Why a service has no address to call.
public struct ResolutionFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
