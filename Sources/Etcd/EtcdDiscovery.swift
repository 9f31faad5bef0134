package import Logging
package import NIOCore
import NIOPosix
package import NIOSSL
import Synchronization

/// Service discovery over etcd for many services and clusters: one `EtcdClient` per cluster (its hosts, in
/// order) and one watching `ServiceSubscriber` per service key, started by the first call that needs it. etcd is
/// not on the call path: calls read the watched sets.
///
/// Bounded: a watch no call used for `idleWatch` is stopped when the next service is watched (a branch URL that
/// stopped appearing does not keep its watch for ever); at most `maxServices` watched services, the least recently
/// used one stopped to make room; at most `maxClusters` clients, and a new cluster takes the place of the least
/// recently used idle one (no call under way, each of its watches waiting to retry: made-up clusters named by
/// branch URLs are never idle for long), whose watches are stopped and connection closed. Entries over
/// `EtcdEntryLimits` are dropped as they arrive. Credentials and TLS for a cluster come from `credentials` (a
/// coordinator's own `MicroService.Target`), since branch URLs carry none.
package final class EtcdDiscovery: Sendable {
    package static let maxClusters = 16
    package static let maxServices = 1024

    /// How to reach one cluster: its user (empty: none) and TLS (nil: plain).
    package struct Credentials: Sendable {
        package var user: String
        package var password: String
        package var tls: NIOSSLContext?
        package init(user: String, password: String, tls: NIOSSLContext? = nil) {
            self.user = user
            self.password = password
            self.tls = tls
        }
    }

    private let group: any EventLoopGroup
    private let logger: Logger
    private let credentials: [String: Credentials]
    private let addressOf: @Sendable (String) -> String?
    private let idleWatch: Duration
    private let limits: EtcdEntryLimits
    private let state = Mutex(State())

    private struct ServiceName: Hashable {
        var hosts: [String]
        var key: String
        var cluster: String { hosts.joined(separator: ",") }
    }

    private struct Cluster {
        var client: EtcdClient
        var lastUsed: ContinuousClock.Instant
        /// Never evicted: the coordinator's own registration uses it.
        var pinned: Bool
    }

    private struct State {
        var clients: [String: Cluster] = [:]
        var services: [ServiceName: (subscriber: ServiceSubscriber, task: Task<Void, Never>)] = [:]
        var closed = false
    }

    /// `credentials`: by cluster (hosts joined with commas, as `EtcdClient.cluster`). `addressOf` turns a registered
    /// value into the address to call, or nil to skip it. `onOversized` counts the entries dropped for their size.
    package init(
        credentials: [String: Credentials] = [:], addressOf: @escaping @Sendable (String) -> String?, idleWatch: Duration = .seconds(600),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger,
        onOversized: @escaping @Sendable (EtcdEntryLimits.Reason, Int) -> Void = { _, _ in }
    ) {
        self.limits = EtcdEntryLimits(logger: logger, onDrop: onOversized)
        self.credentials = credentials
        self.idleWatch = idleWatch
        self.addressOf = addressOf
        self.group = group
        self.logger = logger
    }

    /// The shared client of the cluster `hosts`; nil when discovery is shut down, or when `maxClusters` are in use
    /// and none of them is idle. `pinned`: the cluster is never evicted (the coordinator's registration).
    package func client(hosts: [String], pinned: Bool = false) -> EtcdClient? {
        let cluster = hosts.joined(separator: ",")
        let now = ContinuousClock.now
        let (client, evicted) = state.withLock { state -> (EtcdClient?, (client: EtcdClient, tasks: [Task<Void, Never>])?) in
            if state.closed { return (nil, nil) }
            if var known = state.clients[cluster] {
                known.lastUsed = now
                known.pinned = known.pinned || pinned
                state.clients[cluster] = known
                return (known.client, nil)
            }
            var evicted: (client: EtcdClient, tasks: [Task<Void, Never>])?
            if state.clients.count >= Self.maxClusters {
                guard let victim = Self.leastRecentlyUsedIdle(state) else { return (nil, nil) }
                evicted = Self.evict(victim, from: &state)
            }
            let c = credentials[cluster]
            let client = EtcdClient(
                configuration: .init(hosts: hosts, user: c?.user ?? "", password: c?.password ?? "", tls: c?.tls), group: group, logger: logger)
            state.clients[cluster] = Cluster(client: client, lastUsed: now, pinned: pinned)
            return (client, evicted)
        }
        if let evicted {
            for task in evicted.tasks { task.cancel() }
            logger.info(
                "etcd cluster forgotten to make room for another", metadata: ["cluster": "\(evicted.client.cluster)", "new_cluster": "\(cluster)"])
            Task {
                for task in evicted.tasks { await task.value }
                await evicted.client.close()
            }
        }
        return client
    }

    /// The idle cluster (not pinned, no unary call under way, every watch of it waiting to retry) used longest ago.
    private static func leastRecentlyUsedIdle(_ state: State) -> String? {
        var best: (cluster: String, lastUsed: ContinuousClock.Instant)?
        for (name, cluster) in state.clients where !cluster.pinned && cluster.client.callsInFlight == 0 {
            var lastUsed = cluster.lastUsed
            var idle = true
            for (service, entry) in state.services where service.cluster == name {
                if entry.subscriber.isActive {
                    idle = false
                    break
                }
                lastUsed = max(lastUsed, entry.subscriber.lastUsed)
            }
            if idle, best.map({ lastUsed < $0.lastUsed }) ?? true { best = (name, lastUsed) }
        }
        return best?.cluster
    }

    /// Removes `cluster` and its watches; the caller cancels the tasks and closes the client.
    private static func evict(_ cluster: String, from state: inout State) -> (client: EtcdClient, tasks: [Task<Void, Never>])? {
        guard let entry = state.clients.removeValue(forKey: cluster) else { return nil }
        var tasks: [Task<Void, Never>] = []
        for (service, watched) in state.services where service.cluster == cluster {
            tasks.append(watched.task)
            state.services[service] = nil
        }
        return (entry.client, tasks)
    }

    /// The addresses to try for one call to the service `key` of cluster `hosts`, best first; a failure says why
    /// none is known (the service is not registered yet, or etcd could not be read before the first answer).
    package func addresses(hosts: [String], key: String, limit: Int = .max) async -> Result<[String], ResolutionFailure> {
        let name = ServiceName(hosts: hosts, key: key)
        // The usual case: a watched service, read from memory.
        if let subscriber = state.withLock({ $0.services[name]?.subscriber }), subscriber.hasSettled {
            return Self.answer(subscriber, hosts: hosts, key: key, limit: limit)
        }
        let cluster = hosts.joined(separator: ",")
        guard let client = client(hosts: hosts) else {
            return .failure(
                ResolutionFailure(
                    message: "etcd cluster \(cluster): discovery is shut down, or all \(Self.maxClusters) clusters it keeps are in use (retried later)"))
        }
        let idleSince = ContinuousClock.now - idleWatch
        let (subscriber, isNew, evicted) = state.withLock { state -> (ServiceSubscriber?, Bool, [Task<Void, Never>]) in
            if state.closed { return (nil, false, []) }
            if let existing = state.services[name] { return (existing.subscriber, false, []) }
            // Evicted since `client(hosts:)` answered: watching through a closed client would never work.
            guard state.clients[cluster]?.client === client else { return (nil, false, []) }
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
            let subscriber = ServiceSubscriber(client: client, key: key, addressOf: addressOf, limits: limits, logger: logger)
            state.services[name] = (subscriber, Task { await subscriber.run() })
            return (subscriber, true, evicted)
        }
        for task in evicted { task.cancel() }
        if !evicted.isEmpty { logger.debug("etcd watches stopped", metadata: ["count": "\(evicted.count)"]) }
        guard let subscriber else {
            return .failure(ResolutionFailure(message: "etcd cluster \(cluster): discovery is shut down, or the cluster was just forgotten (retried later)"))
        }
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

    /// Clusters with a client now (tests).
    var clusterCount: Int { state.withLock { $0.clients.count } }

    /// A call could not reach `address` of service `key`: it is tried last for a while.
    package func markFailed(hosts: [String], key: String, address: String) {
        state.withLock { $0.services[ServiceName(hosts: hosts, key: key)]?.subscriber }?.markFailed(address)
    }

    /// Stops every watch and closes the clients.
    package func shutdown() async {
        let (tasks, clients) = state.withLock { state -> ([Task<Void, Never>], [EtcdClient]) in
            state.closed = true
            defer {
                state.services = [:]
                state.clients = [:]
            }
            return (state.services.values.map(\.task), state.clients.values.map(\.client))
        }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        for client in clients { await client.close() }
    }
}

/// Why a service has no address to call.
package struct ResolutionFailure: Error, Sendable, CustomStringConvertible {
    package var message: String
    package var description: String { message }
}
