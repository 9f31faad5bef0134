import DTMCore
import Prometheus
import Synchronization

/// DTM's metrics (spec §13) in a Prometheus registry, exposed as text at `/api/metrics`.
///
/// Metric objects are cached per label set so that the hot path does one dictionary lookup, not a registry
/// lookup. The `api` label is the last path segment without the query string (DTM includes the query, which
/// makes the label unbounded; spec §17.40).
public final class DTMMetrics: ProcessingObserver {
    public enum APIType: String, Sendable { case http, grpc }

    private let registry = PrometheusCollectorRegistry()
    private let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    private struct Cache {
        var counters: [String: Counter] = [:]
        var histograms: [String: ValueHistogram] = [:]
    }
    private let cache = Mutex(Cache())

    public init(version: String) {
        registry.makeGauge(name: "dtm_server_info", labels: [("version", version)]).set(to: 1.0)
    }

    /// One API request answered (`dtm_server_process_total`, `dtm_server_response_duration`).
    public func apiCall(type: APIType, api: String, failed: Bool, seconds: Double) {
        let status = failed ? "fail" : "ok"
        counter("dtm_server_process_total", [("type", type.rawValue), ("api", api), ("status", status)]).increment()
        histogram("dtm_server_response_duration", [("type", type.rawValue), ("api", api)]).record(seconds)
    }

    public func roundFinished(transType: TransType, failed: Bool, secondsSinceCreate: Double) {
        counter("dtm_transaction_process_total", [("model", transType.rawValue), ("status", failed ? "fail" : "ok")]).increment()
        histogram("dtm_transaction_handled_duration", [("model", transType.rawValue)]).record(secondsSinceCreate)
    }

    public func branchFinished(transType: TransType, branchID: String, op: String, succeeded: Bool) {
        counter(
            "dtm_branch_process_total",
            [("model", transType.rawValue), ("branchid", branchID), ("branchtype", op), ("status", succeeded ? "ok" : "fail")]
        ).increment()
    }

    /// The Prometheus text exposition.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    private func key(_ name: String, _ labels: [(String, String)]) -> String {
        var k = name
        for (_, v) in labels { k += "\u{1}" + v }
        return k
    }

    private func counter(_ name: String, _ labels: [(String, String)]) -> Counter {
        let k = key(name, labels)
        return cache.withLock { c in
            if let hit = c.counters[k] { return hit }
            let made = registry.makeCounter(name: name, labels: labels)
            c.counters[k] = made
            return made
        }
    }

    private func histogram(_ name: String, _ labels: [(String, String)]) -> ValueHistogram {
        let k = key(name, labels)
        return cache.withLock { c in
            if let hit = c.histograms[k] { return hit }
            let made = registry.makeValueHistogram(name: name, labels: labels, buckets: buckets)
            c.histograms[k] = made
            return made
        }
    }
}
