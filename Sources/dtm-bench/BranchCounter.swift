import Synchronization

/// What the branch service saw, per saga: a saga of this run is complete when its last action (`TransIn`)
/// arrived; arrivals are kept by the saga's number (parsed from its gid, `<prefix><n>`), so completion,
/// duplicates and submit-to-succeed latency are measured per gid, not assumed.
final class BranchCounter: Sendable {
    struct Arrival: Sendable {
        var seq: Int
        var at: Int64
    }

    let gidPrefix: String
    let clock: Timebase
    private let arrivals = Mutex<[Arrival]>([])
    private let lastActions = Atomic<Int>(0)
    private let calls = Atomic<Int>(0)
    private let failed = Atomic<Int>(0)
    private let compensations = Atomic<Int>(0)
    private let foreign = Atomic<Int>(0)

    init(gidPrefix: String, clock: Timebase) {
        self.gidPrefix = gidPrefix
        self.clock = clock
        arrivals.withLock { $0.reserveCapacity(1 << 16) }
    }

    /// Records one branch call (`method`: the last path segment, e.g. `TransIn`); answers whether the
    /// branch succeeds — it fails when the method name contains `Fail`.
    func record(method: Substring, gid: Substring?) -> Bool {
        calls.add(1, ordering: .relaxed)
        if method.hasSuffix("Revert") || method.hasSuffix("Compensate") { compensations.add(1, ordering: .relaxed) }
        if method.contains("Fail") {
            failed.add(1, ordering: .relaxed)
            return false
        }
        if method == "TransIn" {
            guard let gid, gid.hasPrefix(gidPrefix), let seq = Int(gid.dropFirst(gidPrefix.count)) else {
                foreign.add(1, ordering: .relaxed)
                return true
            }
            let at = clock.now()
            arrivals.withLock { $0.append(Arrival(seq: seq, at: at)) }
            lastActions.add(1, ordering: .relaxed)
        }
        return true
    }

    /// Last-action calls of this run so far (duplicates included).
    var lastActionCalls: Int { lastActions.load(ordering: .relaxed) }

    struct Totals: Sendable {
        var calls: Int
        var failed: Int
        var compensations: Int
        var foreign: Int
    }

    var totals: Totals {
        Totals(
            calls: calls.load(ordering: .relaxed), failed: failed.load(ordering: .relaxed),
            compensations: compensations.load(ordering: .relaxed), foreign: foreign.load(ordering: .relaxed))
    }

    func snapshot() -> [Arrival] { arrivals.withLock { $0 } }

    /// The last segment of a path (`/busi.Busi/TransIn`, `/api/busi/TransIn?gid=…` → `TransIn`).
    static func method(ofPath path: Substring) -> Substring {
        let noQuery = path.firstIndex(of: "?").map { path[..<$0] } ?? path
        return noQuery.lastIndex(of: "/").map { noQuery[noQuery.index(after: $0)...] } ?? noQuery
    }

    /// The `gid` query parameter of a request target.
    static func gid(ofURI uri: Substring) -> Substring? {
        guard let q = uri.firstIndex(of: "?") else { return nil }
        for pair in uri[uri.index(after: q)...].split(separator: "&") where pair.hasPrefix("gid=") {
            return pair.dropFirst(4)
        }
        return nil
    }
}
