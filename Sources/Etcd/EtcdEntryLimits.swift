package import Logging
import Synchronization

/// The size of what a watched prefix may hold, checked as entries arrive (the first range and every watch event),
/// before anything is stored: a go-zero registration is `<service>/<lease id>` = `host:port`, so a longer key or
/// value is not one, and whoever can write to etcd cannot make the coordinator keep megabytes per key.
///
/// Dropped entries are counted through `onDrop` (the server turns it into a Prometheus counter) and logged at
/// most once per `logEvery`, with the counts since the last line, so a flood of them does not flood the log.
package final class EtcdEntryLimits: Sendable {
    /// Most bytes of a key after its service's prefix (`<service>/`): a lease id in decimal is 19 digits at most.
    package static let maxKeySuffixLength = 256
    /// Most bytes of a value: the longest `host:port` (a 253-byte DNS name, `:`, 5 digits) fits with room to spare.
    package static let maxValueLength = 1024

    /// Why an entry was dropped (a fixed set: metric label values).
    package enum Reason: String, Sendable, CaseIterable {
        case keyTooLong = "key_too_long"
        case valueTooLong = "value_too_long"
    }

    private struct Pending {
        var counts: [Reason: Int] = [:]
        var nextLog: ContinuousClock.Instant?
    }

    private let logger: Logger
    private let logEvery: Duration
    private let onDrop: @Sendable (Reason, Int) -> Void
    private let pending = Mutex(Pending())

    package init(logEvery: Duration = .seconds(60), logger: Logger, onDrop: @escaping @Sendable (Reason, Int) -> Void = { _, _ in }) {
        self.logEvery = logEvery
        self.logger = logger
        self.onDrop = onDrop
    }

    /// Why a put of `key` = `value` under `prefix` is refused, or nil when it is within the limits.
    package static func violation(prefix: String, key: String, value: String) -> Reason? {
        let suffix = key.utf8.count >= prefix.utf8.count ? key.utf8.count - prefix.utf8.count : key.utf8.count
        if suffix > maxKeySuffixLength { return .keyTooLong }
        if value.utf8.count > maxValueLength { return .valueTooLong }
        return nil
    }

    /// The puts of `entries` that are within the limits; the others are counted and reported.
    func admit<S: Sequence>(_ entries: S, prefix: String) -> [(key: String, value: String)] where S.Element == (key: String, value: String) {
        var kept: [(key: String, value: String)] = []
        var dropped: [Reason: Int] = [:]
        for entry in entries {
            if let reason = Self.violation(prefix: prefix, key: entry.key, value: entry.value) {
                dropped[reason, default: 0] += 1
            } else {
                kept.append(entry)
            }
        }
        if !dropped.isEmpty { report(dropped, prefix: prefix) }
        return kept
    }

    /// Counts `dropped` and logs them, at most once per `logEvery`.
    func report(_ dropped: [Reason: Int], prefix: String) {
        for (reason, count) in dropped { onDrop(reason, count) }
        let now = ContinuousClock.now
        let due = pending.withLock { p -> [Reason: Int]? in
            for (reason, count) in dropped { p.counts[reason, default: 0] += count }
            if let next = p.nextLog, now < next { return nil }
            p.nextLog = now + logEvery
            defer { p.counts = [:] }
            return p.counts
        }
        guard let due else { return }
        var metadata: Logger.Metadata = [
            "prefix": "\(prefix.prefix(128))", "max_key_suffix_bytes": "\(Self.maxKeySuffixLength)", "max_value_bytes": "\(Self.maxValueLength)",
        ]
        for (reason, count) in due { metadata[reason.rawValue] = "\(count)" }
        logger.warning("etcd entries too large for a service registration were dropped (counted since the last report)", metadata: metadata)
    }
}
