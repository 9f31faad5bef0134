package import Logging
import Synchronization

/// The live set of one service's instances, as go-zero's `discov.Subscriber` keeps it: every key under `<key>/`
/// read with one range request, then watched from the next revision. Values are `host:port` addresses,
/// de-duplicated, at most `maxAddresses` kept (in key order); entries over `EtcdEntryLimits` are dropped as they
/// arrive. When etcd cannot be reached the last known set is
/// kept and the subscriber reconnects with back-off (0.5 s doubling to 5 s), reading the whole set again.
///
/// Calls take `addresses()`: every known address, rotated one further each time (round-robin), with the ones a
/// recent call could not reach (`markFailed`) moved to the end.
package final class ServiceSubscriber: Sendable {
    package static let maxAddresses = 32
    /// Most keys remembered under one prefix: a flood of registrations cannot grow memory without bound.
    package static let maxKeys = 1024

    package let key: String
    private let client: EtcdClient
    private let logger: Logger
    private let state = Mutex(State())
    private let failedFor: Duration
    private let limits: EtcdEntryLimits

    private struct State {
        var values: [String: String] = [:]
        var addresses: [String] = []
        var next = 0
        var failedUntil: [String: ContinuousClock.Instant] = [:]
        /// The first read finished (or failed): `waitForFirstRead` returns.
        var settled = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var lastError: String?
        var lastUsed = ContinuousClock.now
        /// A read or a watch is under way (false only while waiting to retry).
        var active = false
    }

    /// Turns a stored value into the address to call, or nil to skip it (values are written by whoever can write
    /// to etcd).
    private let addressOf: @Sendable (String) -> String?

    package init(
        client: EtcdClient, key: String, failedFor: Duration = .seconds(3),
        addressOf: @escaping @Sendable (String) -> String? = { $0.isEmpty ? nil : $0 }, limits: EtcdEntryLimits? = nil, logger: Logger
    ) {
        self.limits = limits ?? EtcdEntryLimits(logger: logger)
        self.client = client
        self.key = key
        self.failedFor = failedFor
        self.addressOf = addressOf
        self.logger = logger
    }

    /// True once the first read answered or failed.
    package var hasSettled: Bool { state.withLock { $0.settled } }

    /// Why the set may be stale or empty (the last etcd failure), nil while the watch works.
    package var lastError: String? { state.withLock { $0.lastError } }

    /// When a call last asked for the addresses.
    package var lastUsed: ContinuousClock.Instant { state.withLock { $0.lastUsed } }

    /// True while etcd is being read or watched; false while the subscriber waits to retry (or has stopped).
    package var isActive: Bool { state.withLock { $0.active } }

    /// Up to `limit` addresses in the order to try them for one call; empty when none is known.
    package func addresses(limit: Int = .max) -> [String] {
        let now = ContinuousClock.now
        return state.withLock { state in
            state.lastUsed = now
            let all = state.addresses
            guard !all.isEmpty, limit > 0 else { return [] }
            let start = state.next % all.count
            state.next = (start + 1) % all.count
            var out: [String] = []
            out.reserveCapacity(min(limit, all.count))
            if !state.failedUntil.isEmpty { state.failedUntil = state.failedUntil.filter { $0.value > now } }
            // Healthy ones first, from the round-robin position; then the ones that failed recently.
            for pass in 0..<(state.failedUntil.isEmpty ? 1 : 2) {
                for i in 0..<all.count where out.count < limit {
                    let address = all[(start + i) % all.count]
                    if (state.failedUntil[address] == nil) == (pass == 0) { out.append(address) }
                }
            }
            return out
        }
    }

    /// A call could not reach `address`: later calls try it last for a while.
    package func markFailed(_ address: String) {
        let until = ContinuousClock.now + failedFor
        state.withLock { state in
            if state.addresses.contains(address) { state.failedUntil[address] = until }
        }
    }

    /// Returns once the first range request answered or failed.
    package func waitForFirstRead() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state -> Bool in
                if state.settled { return true }
                state.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Reads and watches until the task is cancelled.
    package func run() async {
        let prefix = key + "/"
        var backoff = Duration.milliseconds(500)
        while !Task.isCancelled {
            state.withLock { $0.active = true }
            do {
                let (revision, kvs, more) = try await readAll(prefix)
                if more {
                    logger.warning("more keys under the prefix than are kept; the rest are ignored", metadata: ["key": "\(prefix)", "kept": "\(Self.maxKeys)"])
                }
                replaceAll(kvs)
                let watch = try await client.watch(prefix: prefix, after: revision)
                defer { watch.cancel() }
                if state.withLock({ $0.lastError != nil }) {
                    logger.info("etcd watch restored", metadata: ["key": "\(prefix)", "cluster": "\(client.cluster)"])
                }
                state.withLock { $0.lastError = nil }
                backoff = .milliseconds(500)
                while true {
                    apply(try await watch.next())
                }
            } catch {
                state.withLock { $0.active = false }
                if Task.isCancelled { break }
                let first = state.withLock { state -> Bool in
                    defer { state.lastError = "\(error)" }
                    return state.lastError == nil
                }
                settle()
                let metadata: Logger.Metadata = [
                    "key": "\(prefix)", "cluster": "\(client.cluster)", "error": "\(error)", "known_addresses": "\(state.withLock { $0.addresses.count })",
                ]
                if first {
                    logger.warning("etcd watch failed; keeping the last known addresses and retrying", metadata: metadata)
                } else {
                    logger.debug("etcd watch failed", metadata: metadata)
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
        state.withLock { $0.active = false }
        settle()
    }

    /// Every entry under `prefix` within the limits (at most `maxKeys` read: a prefix flooded with registrations
    /// cannot make the answer or memory grow without end), all as of one revision. One request as a rule; when the
    /// answer would exceed `EtcdClient.maxResponseSize` (entries far larger than a registration), the pages shrink,
    /// down to one key, so that such entries are read one at a time and dropped instead of making the prefix unreadable.
    private func readAll(_ prefix: String) async throws -> (revision: Int64, kvs: [(key: String, value: String)], more: Bool) {
        var pageSize = Self.maxKeys
        var from = prefix
        var revision: Int64 = 0
        var kept: [(key: String, value: String)] = []
        var read = 0
        var requests = 0
        while true {
            requests += 1
            let page: (revision: Int64, kvs: [EtcdKeyValue], more: Bool)
            do {
                page = try await client.range(prefix: prefix, from: from, limit: Int64(min(pageSize, Self.maxKeys - read)), revision: revision)
            } catch EtcdError.status(.resourceExhausted, _) where pageSize > 1 {
                pageSize = max(1, pageSize / 8)
                continue
            }
            if revision == 0 { revision = page.revision }
            kept += limits.admit(page.kvs.lazy.map { (key: $0.key, value: $0.value) }, prefix: prefix)
            read += page.kvs.count
            // The next page starts just after the last key. A key that is not UTF-8 reads back altered, so `from`
            // might not move past it: stop rather than loop.
            guard page.more, read < Self.maxKeys, requests <= Self.maxKeys, let last = page.kvs.last?.key else { return (revision, kept, page.more) }
            let next = last + "\u{0}"
            guard from.utf8.lexicographicallyPrecedes(next.utf8) else { return (revision, kept, page.more) }
            from = next
        }
    }

    private func replaceAll(_ admitted: [(key: String, value: String)]) {
        let changed = state.withLock { state in
            state.values = [:]
            for (k, v) in admitted.prefix(Self.maxKeys) { state.values[k] = v }
            return recompute(&state)
        }
        logChange(changed)
        settle()
    }

    private func apply(_ changes: [(key: String, value: String?)]) {
        guard !changes.isEmpty else { return }
        // An oversized put is read as a delete: the key no longer holds what was known of it.
        let prefix = key + "/"
        var dropped: [EtcdEntryLimits.Reason: Int] = [:]
        let admitted = changes.map { change -> (key: String, value: String?) in
            guard let value = change.value, let reason = EtcdEntryLimits.violation(prefix: prefix, key: change.key, value: value) else { return change }
            dropped[reason, default: 0] += 1
            return (change.key, nil)
        }
        if !dropped.isEmpty { limits.report(dropped, prefix: prefix) }
        let changed = state.withLock { state in
            for change in admitted {
                if let value = change.value {
                    if state.values[change.key] != nil || state.values.count < Self.maxKeys { state.values[change.key] = value }
                } else {
                    state.values[change.key] = nil
                }
            }
            return recompute(&state)
        }
        logChange(changed)
    }

    private func logChange(_ addresses: [String]?) {
        guard let addresses else { return }
        logger.info("service addresses changed", metadata: ["key": "\(key)/", "addresses": "\(addresses.joined(separator: ","))"])
    }

    /// Recomputes the address list from the values; returns it when it changed.
    private func recompute(_ state: inout State) -> [String]? {
        var seen = Set<String>()
        var addresses: [String] = []
        for k in state.values.keys.sorted() {
            guard let v = state.values[k], let address = addressOf(v), seen.insert(address).inserted else {
                continue
            }
            addresses.append(address)
            if addresses.count == Self.maxAddresses { break }
        }
        let changed = addresses != state.addresses
        state.addresses = addresses
        state.failedUntil = state.failedUntil.filter { seen.contains($0.key) }
        return changed ? addresses : nil
    }

    private func settle() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.settled = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
