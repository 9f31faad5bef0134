package import Logging
import Synchronization

/// Registers one service instance in etcd exactly as go-zero's `discov.Publisher` does: a lease of `ttl` seconds,
/// the key `<key>/<lease id in decimal>` holding `value` (the instance's `host:port`) attached to it, renewed every
/// `ttl / 3`. When the renewal stops working (etcd restarted, the lease expired) it registers again under a new
/// lease, retrying every second; a deleted key is put back. `run` returns when its task is cancelled, after
/// revoking the lease so the key disappears at once.
package final class ServicePublisher: Sendable {
    package let key: String
    package let value: String
    package let ttl: Int64
    private let client: EtcdClient
    private let logger: Logger
    private let lease = Mutex<Int64?>(nil)
    /// Leases that could not be revoked (etcd was down): revoked once a registration works again, so that the old
    /// key does not linger beside the new one until its TTL runs out (etcd renews leases when it restarts).
    private let unrevoked = Mutex<[Int64]>([])
    private let retryDelay: Duration

    package init(client: EtcdClient, key: String, value: String, ttl: Int64 = 10, retryDelay: Duration = .seconds(1), logger: Logger) {
        self.client = client
        self.key = key
        self.value = value
        self.ttl = max(ttl, 1)
        self.retryDelay = retryDelay
        self.logger = logger
    }

    /// The key of the current registration, if any.
    package var registeredKey: String? { lease.withLock { $0.map { "\(key)/\($0)" } } }

    /// Keeps the registration alive until the task is cancelled, then revokes it.
    package func run() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let id = try await client.grantLease(ttl: ttl)
                let fullKey = "\(key)/\(id)"
                let revision = try await client.put(key: fullKey, value: value, lease: id)
                lease.withLock { $0 = id }
                logger.info("registered in etcd", metadata: ["key": "\(fullKey)", "value": "\(value)", "cluster": "\(client.cluster)", "ttl": "\(ttl)"])
                failures = 0
                await revokeLeftovers()
                try await keepAlive(lease: id, key: fullKey, after: revision)
                logger.warning("etcd lease lost; registering again", metadata: ["key": "\(fullKey)", "cluster": "\(client.cluster)"])
            } catch {
                if Task.isCancelled { break }
                failures += 1
                // Loud once, then at debug level: etcd may stay down for long.
                let metadata: Logger.Metadata = ["key": "\(key)", "cluster": "\(client.cluster)", "error": "\(error)", "attempt": "\(failures)"]
                if failures == 1 {
                    logger.warning("cannot register in etcd; retrying every \(retryDelay)", metadata: metadata)
                } else {
                    logger.debug("cannot register in etcd", metadata: metadata)
                }
            }
            await revokeCurrent()
            try? await Task.sleep(for: retryDelay)
        }
        await revokeCurrent()
    }

    /// Revokes the current lease, if any, outside the (possibly cancelled) calling task.
    private func revokeCurrent() async {
        guard
            let id = lease.withLock({ current -> Int64? in
                defer { current = nil }; return current
            })
        else { return }
        if await !revoke(id) { unrevoked.withLock { $0 = Array(($0 + [id]).suffix(16)) } }
    }

    private func revokeLeftovers() async {
        for id in unrevoked.withLock({ list in
            defer { list = [] }; return list
        }) { _ = await revoke(id) }
    }

    private func revoke(_ id: Int64) async -> Bool {
        let client = self.client
        let logger = self.logger
        let key = "\(self.key)/\(id)"
        return await Task {
            do {
                try await client.revokeLease(id)
                logger.info("etcd registration revoked", metadata: ["key": "\(key)"])
                return true
            } catch EtcdError.status(_, let message) where message.contains("lease not found") {
                return true  // expired already
            } catch {
                logger.debug("etcd lease not revoked (it expires by itself)", metadata: ["key": "\(key)", "error": "\(error)"])
                return false
            }
        }.value
    }

    /// Renews `lease` every ttl/3 and puts `key` back if it is deleted. Returns when etcd says the lease is gone;
    /// throws when a stream breaks.
    private func keepAlive(lease: Int64, key: String, after revision: Int64) async throws {
        let keepAlive = try await client.keepAliveStream()
        let watch: EtcdWatchStream
        do {
            watch = try await client.watch(prefix: key, exact: true, after: revision)
        } catch {
            keepAlive.cancel()
            throw error
        }
        defer {
            keepAlive.cancel()
            watch.cancel()
        }
        let interval = Duration.seconds(Double(ttl) / 3)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    guard try await keepAlive.refresh(lease) else { throw EtcdError.unavailable("keep-alive stream closed") }
                    try await Task.sleep(for: interval)
                }
            }
            group.addTask {
                while true {
                    let granted = try await keepAlive.next()
                    if granted <= 0 { return }  // expired or revoked: register again
                }
            }
            group.addTask { [client, value, logger] in
                while true {
                    for change in try await watch.next() where change.key == key && change.value == nil {
                        logger.warning("etcd registration deleted by someone else; putting it back", metadata: ["key": "\(key)"])
                        try await client.put(key: key, value: value, lease: lease)
                    }
                }
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}
