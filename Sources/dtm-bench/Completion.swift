/// Joins the submits with the branch service's last-action arrivals, saga by saga (by gid number).
struct Completion {
    /// Distinct accepted sagas whose last action arrived before the load ended.
    var inWindow = 0
    /// Distinct accepted sagas whose last action arrived at all (after the drain).
    var total = 0
    /// Last-action calls beyond the first for a saga (the coordinator retried or ran it twice).
    var duplicates = 0
    /// Last-action arrivals for sagas this run never had accepted.
    var unexpected = 0
    /// Submit start (due time in open loop) → first last-action arrival, µs.
    var submitToSucceed = makeHistogram()

    init(load: LoadOutcome, arrivals: [BranchCounter.Arrival]) {
        let size = (load.starts.map(\.seq).max() ?? -1) + 1
        var startOf = [Int64](repeating: -1, count: size)
        for s in load.starts { startOf[s.seq] = s.at }
        var seen = [Bool](repeating: false, count: size)
        for a in arrivals {
            guard a.seq < size, startOf[a.seq] >= 0 else {
                unexpected += 1
                continue
            }
            if seen[a.seq] {
                duplicates += 1
                continue
            }
            seen[a.seq] = true
            total += 1
            if a.at <= load.loadEnd { inWindow += 1 }
            _ = submitToSucceed.record(UInt64(max(0, a.at - startOf[a.seq]) / 1000))
        }
    }
}
