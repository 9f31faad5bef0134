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
        // Compared as UTF-8 bytes: Character-wise comparisons were a visible part of the branch service's CPU.
        let name = method.utf8
        if name.elementsEqual("TransIn".utf8) {
            guard let gid, let seq = sequenceNumber(of: gid) else {
                foreign.add(1, ordering: .relaxed)
                return true
            }
            let at = clock.now()
            arrivals.withLock { $0.append(Arrival(seq: seq, at: at)) }
            lastActions.add(1, ordering: .relaxed)
            return true
        }
        if name.reversed().starts(with: "Revert".utf8.reversed()) || name.reversed().starts(with: "Compensate".utf8.reversed()) {
            compensations.add(1, ordering: .relaxed)
        }
        if Self.containsFail(method) {
            failed.add(1, ordering: .relaxed)
            return false
        }
        return true
    }

    /// `n` of a gid `<prefix><n>` of this run.
    private func sequenceNumber(of gid: Substring) -> Int? {
        let bytes = gid.utf8
        guard bytes.starts(with: gidPrefix.utf8) else { return nil }
        var n = 0
        var digits = 0
        for byte in bytes.dropFirst(gidPrefix.utf8.count) {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), digits < 18 else { return nil }
            n = n * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
        }
        return digits > 0 ? n : nil
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

    /// Whether `method` contains `Fail`, on its UTF-8 bytes: `Substring.contains(String)` goes through the
    /// string-processing library and was ~5% of dtm-bench's CPU.
    static func containsFail(_ method: Substring) -> Bool {
        let utf8 = method.utf8
        var i = utf8.startIndex
        while i != utf8.endIndex {
            if utf8[i...].starts(with: "Fail".utf8) { return true }
            utf8.formIndex(after: &i)
        }
        return false
    }

    /// The last segment of a path (`/busi.Busi/TransIn`, `/api/busi/TransIn?gid=…` → `TransIn`).
    static func method(ofPath path: Substring) -> Substring {
        let bytes = path.utf8
        let end = bytes.firstIndex(of: UInt8(ascii: "?")) ?? bytes.endIndex
        let start = bytes[..<end].lastIndex(of: UInt8(ascii: "/")).map { bytes.index(after: $0) } ?? bytes.startIndex
        return Substring(bytes[start..<end])
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
