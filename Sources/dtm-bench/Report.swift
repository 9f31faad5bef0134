/// The figures of one run, printed for people and, with `--row`, as one tab-separated line for scripts/bench.sh.
struct Report {
    var label: String
    var load: LoadOutcome
    var completion: Completion
    var openLoop: Bool
    var cpuMicrosPerSaga: Double?
    var residentMiB: Int?
    /// The bench process's own CPU (load generator and branch service) per completed saga.
    var benchMicrosPerSaga: Double?
    var storeStatuses: [String: Int]
    var branchTotals: BranchCounter.Totals
    /// The share of the machine's CPU time the hypervisor gave to other guests during the run (/proc/stat steal).
    var stealShare: Double?

    var window: Double { Double(load.loadEnd - load.loadStart) / 1e9 }
    var sagasPerSecond: Double { Double(completion.inWindow) / window }

    static func ms(_ micros: UInt64) -> String { fmt(Double(micros) / 1000, 2) }

    func printHuman() {
        let s = load.submit
        let c = completion
        let missing = load.starts.count - c.total
        print("scenario: \(label), \(fmt(window, 1)) s")
        print("  submitted: \(load.submitted) (\(fmt(Double(load.submitted) / window, 0))/s), accepted \(load.starts.count), errors \(load.failures)")
        print(
            "  completed (last action reached the branch service): \(fmt(sagasPerSecond, 0))/s in the load window; "
                + "\(c.total) of \(load.starts.count) accepted after the drain (\(missing) missing), \(c.duplicates) duplicate last-action calls, \(c.unexpected) unexpected"
        )
        print(
            "  branch calls: \(branchTotals.calls), answered failure \(branchTotals.failed), compensations \(branchTotals.compensations), foreign gids \(branchTotals.foreign)"
        )
        print(
            "  submit latency ms\(openLoop ? " (from the due time)" : ""): p50 \(Self.ms(s.valueAtPercentile(50))) p99 \(Self.ms(s.valueAtPercentile(99))) "
                + "p999 \(Self.ms(s.valueAtPercentile(99.9))) max \(Self.ms(s.max))")
        if openLoop {
            print(
                "  generator send lag ms: p50 \(Self.ms(load.sendLag.valueAtPercentile(50))) p99 \(Self.ms(load.sendLag.valueAtPercentile(99))) max \(Self.ms(load.sendLag.max))"
            )
        }
        print(
            "  submit → succeed ms: p50 \(Self.ms(c.submitToSucceed.valueAtPercentile(50))) p99 \(Self.ms(c.submitToSucceed.valueAtPercentile(99))) max \(Self.ms(c.submitToSucceed.max))"
        )
        if let cpu = cpuMicrosPerSaga, let rss = residentMiB {
            print("  coordinator: \(fmt(cpu, 0)) µs CPU per completed saga, \(rss) MiB resident")
        }
        if let own = benchMicrosPerSaga {
            print("  dtm-bench itself (load generator + branch service): \(fmt(own, 0)) µs CPU per completed saga")
        }
        if let steal = stealShare {
            print(
                "  machine: \(fmt(steal * 100, 1)) % of CPU time stolen by the hypervisor during the run"
                    + (steal > 0.05 ? " (a noisy neighbour: compare runs only at similar steal)" : ""))
        }
        if !storeStatuses.isEmpty {
            print("  store check (query a sample of gids): " + storeStatuses.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
    }

    /// `ROW <tab> label, sagas/s, p50, p99, p999, s2s p50, s2s p99 (ms), CPU µs/saga, RSS MiB, store check, missing,
    /// steal %, completed sagas` (the last: distinct sagas whose last action arrived, after the drain — what
    /// scripts/bench.sh divides the coordinator's syscall and I/O counts by).
    func printRow() {
        let s = load.submit
        let c = completion
        let sampled = storeStatuses.values.reduce(0, +)
        let steal: String = stealShare.map { fmt($0 * 100, 1) } ?? "-"
        let fields: [String] = [
            "ROW", label, fmt(sagasPerSecond, 0),
            Self.ms(s.valueAtPercentile(50)), Self.ms(s.valueAtPercentile(99)), Self.ms(s.valueAtPercentile(99.9)),
            Self.ms(c.submitToSucceed.valueAtPercentile(50)), Self.ms(c.submitToSucceed.valueAtPercentile(99)),
            cpuMicrosPerSaga.map { fmt($0, 0) } ?? "-", residentMiB.map(String.init) ?? "-",
            sampled == 0 ? "-" : "\(storeStatuses["succeed"] ?? 0)/\(sampled)",
            String(load.starts.count - c.total),
            steal,
            String(c.total),
        ]
        print(fields.joined(separator: "\t"))
    }
}
