package import DTMCore
import Prometheus
import Synchronization

/// DTM's metrics (spec §13) in a Prometheus registry, exposed as text at `/api/metrics`.
///
/// Metric objects are cached per label set so that the hot path does one dictionary lookup, not a registry
/// lookup. Every label value comes from a fixed set, so that no client can grow the registry: the `api` label is
/// a known route or `other` (DTM uses the path with its query, an unbounded set; spec §17.40), and the branch
/// metric has no `branchid` label (DTM's is whatever the client sent).
package final class DTMMetrics: ProcessingObserver {
    package enum APIType: String, Sendable { case http, grpc }

    private let registry = PrometheusCollectorRegistry()
    private let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// A metric and its label values (at most four); label names are fixed per metric.
    private struct Key: Hashable {
        var name: String
        var v0 = "", v1 = "", v2 = "", v3 = ""
    }
    private static let apiCallLabels = ["type", "api", "status"]
    private static let apiDurationLabels = ["type", "api"]
    private static let roundLabels = ["model", "status"]
    private static let modelLabel = ["model"]
    private static let reasonLabel = ["reason"]
    /// The reasons `Etcd.EtcdEntryLimits` gives (this target does not import Etcd).
    package static let etcdDropReasons: Set<String> = ["key_too_long", "value_too_long"]
    private static let branchLabels = ["model", "branchtype", "status"]
    private static let branchOps: Set<String> = [
        BranchOp.action, BranchOp.compensate, BranchOp.confirm, BranchOp.cancel, BranchOp.commit, BranchOp.rollback, BranchOp.msg,
    ]
    private struct Cache {
        var counters: [Key: Counter] = [:]
        var histograms: [Key: ValueHistogram] = [:]
    }
    private let cache = Mutex(Cache())

    package init(version: String) {
        registry.makeGauge(name: "dtm_server_info", labels: [("version", version)]).set(to: 1.0)
    }

    /// One API request answered, started at `started` (`dtm_server_process_total`, `dtm_server_response_duration`).
    package func apiCall(type: APIType, api: String, failed: Bool, started: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - started
        apiCall(type: type, api: api, failed: failed, seconds: elapsed.secondsValue)
    }

    /// One API request answered (`dtm_server_process_total`, `dtm_server_response_duration`).
    package func apiCall(type: APIType, api: String, failed: Bool, seconds: Double) {
        let status = failed ? "fail" : "ok"
        counter(Key(name: "dtm_server_process_total", v0: type.rawValue, v1: api, v2: status), Self.apiCallLabels).increment()
        histogram(Key(name: "dtm_server_response_duration", v0: type.rawValue, v1: api), Self.apiDurationLabels).record(seconds)
    }

    package func roundFinished(transType: TransType, failed: Bool, secondsSinceCreate: Double) {
        counter(Key(name: "dtm_transaction_process_total", v0: transType.rawValue, v1: failed ? "fail" : "ok"), Self.roundLabels)
            .increment()
        histogram(Key(name: "dtm_transaction_handled_duration", v0: transType.rawValue), Self.modelLabel).record(secondsSinceCreate)
    }

    package func branchFinished(transType: TransType, op: String, succeeded: Bool) {
        let branchType = Self.branchOps.contains(op) ? op : "other"
        counter(
            Key(name: "dtm_branch_process_total", v0: transType.rawValue, v1: branchType, v2: succeeded ? "ok" : "fail"),
            Self.branchLabels
        ).increment()
    }

    /// etcd entries dropped as they arrived because a key or value was too long for a service registration
    /// (`dtm_etcd_entries_dropped_total`, ours). `reason` is one of `etcdDropReasons`, else counted as `other`.
    package func etcdEntriesDropped(reason: String, count: Int) {
        guard count > 0 else { return }
        let label = Self.etcdDropReasons.contains(reason) ? reason : "other"
        counter(Key(name: "dtm_etcd_entries_dropped_total", v0: label), Self.reasonLabel).increment(by: Int64(count))
    }

    /// Spans swift-otel dropped because its export queue was full (`dtm_trace_spans_dropped_total`, ours).
    package func traceSpansDropped(count: Int) {
        guard count > 0 else { return }
        counter(Key(name: "dtm_trace_spans_dropped_total"), []).increment(by: Int64(count))
    }

    /// The Prometheus text exposition.
    package func exposition() -> [UInt8] { registry.emitToBuffer() }

    /// The key's label values paired with `names`, in order (only on a cache miss).
    private static func labels(_ key: Key, _ names: [String]) -> [(String, String)] {
        Array(zip(names, [key.v0, key.v1, key.v2, key.v3]))
    }

    private func counter(_ key: Key, _ names: [String]) -> Counter {
        cache.withLock { c in
            if let hit = c.counters[key] { return hit }
            let made = registry.makeCounter(name: key.name, labels: Self.labels(key, names))
            c.counters[key] = made
            return made
        }
    }

    private func histogram(_ key: Key, _ names: [String]) -> ValueHistogram {
        cache.withLock { c in
            if let hit = c.histograms[key] { return hit }
            let made = registry.makeValueHistogram(name: key.name, labels: Self.labels(key, names), buckets: buckets)
            c.histograms[key] = made
            return made
        }
    }
}
