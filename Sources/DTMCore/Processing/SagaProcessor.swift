/// Saga rounds (spec §8.2): actions in order (or by `orders` when concurrent); on FAILURE, timeout or an
/// exhausted `retry_limit`, compensations in reverse order, the failed step included.
public struct SagaProcessor: ModeProcessor {
    public init() {}

    public func processOnce(_ round: TransactionRound) async throws -> RoundResult {
        let config = round.config
        if round.transaction.status == .submitted && round.isTimedOut {
            try await round.changeStatus(to: .aborting, rollbackReason: round.timeoutReason)
        }
        let custom: SagaCustomData? =
            round.transaction.customData.isEmpty
            ? nil : try? round.context.coding.decode(SagaCustomData.self, from: round.transaction.customData)
        let stepCount = round.branches.count / 2
        let plan = try SagaPlan(stepCount: stepCount, customData: custom)
        let roundStart = round.now
        let budget = Double(config.requestTimeout) + 2
        func withinBudget() -> Bool { round.now.seconds(since: roundStart) < budget }
        func statuses() -> [BranchStatus] { round.branches.map(\.status) }

        let initial = statuses()
        let toStart = (0..<stepCount).filter { initial[SagaPlan.actionIndex($0)] == .prepared }.count
        var failedBefore = (0..<stepCount).contains { initial[SagaPlan.actionIndex($0)] == .failed }
        var failureReason = ""
        var succeededNow = 0
        // Stored, so from outside: kept within 0…limit, or a negative count would retry (almost) without end.
        var retries = max(0, min(round.transaction.options.retryCount, config.limits.maxRetryLimit))
        var started = Set<Int>()  // steps whose action was started in this round

        // Action phase.
        if round.transaction.status == .submitted && !round.isTimedOut && !failedBefore {
            try await runPhase(round, withinBudget: withinBudget) { running in
                guard round.transaction.status == .submitted, !round.isTimedOut, failureReason.isEmpty else { return [] }
                let s = statuses()
                var next: [Int] = []
                for k in 0..<stepCount where !started.contains(k) && !running.contains(SagaPlan.actionIndex(k)) {
                    if s[SagaPlan.actionIndex(k)] == .prepared && plan.shouldRunAction(k, statuses: s) {
                        started.insert(k)
                        next.append(SagaPlan.actionIndex(k))
                    }
                }
                return next
            } onResult: { index, outcome in
                switch outcome {
                case .succeeded:
                    succeededNow += 1
                    return false
                case .failed(let reason):
                    failureReason = reason
                    return false
                case .ongoing, .error:
                    let limit = min(round.transaction.options.retryLimit, config.limits.maxRetryLimit)
                    guard limit > 0, round.transaction.status == .submitted else { return false }
                    if retries < limit {
                        retries += 1
                        return true  // run it again at once
                    }
                    try await round.changeStatus(
                        to: .aborting, rollbackReason: "RetryCount is greater than RetryLimit, RetryLimit: \(limit)")
                    return false
                }
            }
        }

        if round.transaction.status == .submitted {
            if failureReason.isEmpty && !failedBefore && succeededNow == toStart {
                try await round.changeStatus(to: .succeed)
                return .ok
            }
            if !failureReason.isEmpty || failedBefore {
                try await round.changeStatus(to: .aborting, rollbackReason: failureReason.isEmpty ? "fail message lost" : failureReason)
                failedBefore = true
            } else if round.isTimedOut {
                try await round.changeStatus(to: .aborting, rollbackReason: round.timeoutReason)
            }
        }
        guard round.transaction.status == .aborting else { return .ok }

        // An action that was started (or could start now) but has no definite answer may have executed:
        // treat it as done, in memory only, so that it is compensated.
        // Which actions count as possibly run is decided on the statuses as they are, before any is marked
        // (marking step k first would make step k+1 look runnable although it never ran).
        let before = statuses()
        var view = before
        for k in 0..<stepCount where before[SagaPlan.actionIndex(k)] == .prepared {
            if started.contains(k) || plan.shouldRunAction(k, statuses: before) {
                view[SagaPlan.actionIndex(k)] = .succeed
            }
        }
        let toCompensate = (0..<stepCount).filter {
            view[SagaPlan.compensateIndex($0)] != .succeed && view[SagaPlan.actionIndex($0)] != .prepared
        }.count
        var compensated = 0
        var compStarted = Set<Int>()

        try await runPhase(round, withinBudget: withinBudget) { running in
            guard round.transaction.status == .aborting else { return [] }
            for k in 0..<stepCount {
                view[SagaPlan.compensateIndex(k)] = round.branches[SagaPlan.compensateIndex(k)].status
            }
            var next: [Int] = []
            for k in stride(from: stepCount - 1, through: 0, by: -1) where !compStarted.contains(k) {
                let index = SagaPlan.compensateIndex(k)
                if view[index] == .prepared && !running.contains(index) && plan.shouldRollback(k, statuses: view) {
                    compStarted.insert(k)
                    next.append(index)
                }
            }
            return next
        } onResult: { _, outcome in
            if outcome == .succeeded { compensated += 1 }
            return false
        }

        if round.transaction.status == .aborting && compensated == toCompensate {
            try await round.changeStatus(to: .failed)
        }
        return .ok
    }

    /// Runs branch calls until nothing more may start: `nextBatch` names the rows to start now (given the rows
    /// running), and each result is recorded in this task before `onResult` decides whether to run the same row
    /// again. When the round's budget is spent no new call starts; calls in flight are still awaited and recorded.
    ///
    /// While one call at a time may run (every sequential saga), it is awaited in this task; child tasks are
    /// made only once two calls may run together (concurrent sagas). Same order of calls and records either
    /// way; a task per branch call was a measurable part of a saga's CPU.
    private func runPhase(
        _ round: TransactionRound,
        withinBudget: () -> Bool,
        nextBatch: (Set<Int>) -> [Int],
        onResult: (Int, BranchOutcome) async throws -> Bool
    ) async throws {
        let caller = round.context.caller
        guard withinBudget() else { return }
        var pending = nextBatch([])
        while pending.count == 1 {
            let index = pending[0]
            try await round.settle()
            let result = await TransactionRound.call(round.branchCall(index: index), caller: caller)
            let outcome = try await round.record(result, index: index)
            let again = try await onResult(index, outcome)
            guard withinBudget() else { return }
            pending = again ? [index] + nextBatch([index]) : nextBatch([])
        }
        guard !pending.isEmpty else { return }
        try await withThrowingTaskGroup(of: (Int, BranchCallResult).self) { group in
            var running = Set<Int>()
            func start(_ index: Int) {
                let call = round.branchCall(index: index)
                running.insert(index)
                group.addTask { (index, await TransactionRound.call(call, caller: caller)) }
            }
            try await round.settle()
            for index in pending { start(index) }
            while let (index, result) = try await group.next() {
                running.remove(index)
                let outcome = try await round.record(result, index: index)
                let again = try await onResult(index, outcome)
                var next: [Int] = []
                if withinBudget() {
                    if again { next.append(index) }
                    next += nextBatch(running.union(next))
                }
                if !running.isEmpty || !next.isEmpty { try await round.settle() }
                for index in next { start(index) }
            }
        }
    }
}
