/// Saga rounds (spec §8.2): actions in order (or by `orders` when concurrent); on FAILURE, timeout or an
/// exhausted `retry_limit`, compensations in reverse order, the failed step included.
package struct SagaProcessor: ModeProcessor {
    package init() {}
    package func round() -> SagaRound { SagaRound() }
}

/// One saga round as a state machine: an action phase, then (when the saga is aborting) a compensation phase.
/// Each phase starts every row that may run now and, as results come back, the rows they unblock; a row without a
/// definite answer is run again at once while `retry_limit` allows. No new call starts once the round's budget
/// (request timeout + 2 s) is spent; calls in flight are still awaited.
package struct SagaRound: RoundStateMachine {
    private enum Phase { case begin, actionsSetUp, actions, compensationsSetUp, compensations }

    private var phase = Phase.begin
    private var plan = SagaPlan(sequentialSteps: 0)
    private var roundStart = Timestamp(microseconds: 0)
    private var budget = 0.0
    /// Rows started and not yet answered.
    private var running = Set<Int>()

    // Action phase.
    private var toStart = 0
    private var failedBefore = false
    private var failureReason = ""
    private var succeededNow = 0
    private var retries: Int64 = 0
    private var started = Set<Int>()  // steps whose action was started in this round
    /// A status this round asked for and the runner has not written yet (it writes before the next event).
    private var abortRequested = false

    // Compensation phase.
    private var view: [BranchStatus] = []
    private var toCompensate = 0
    private var compensated = 0
    private var compensationStarted = Set<Int>()

    package mutating func next(_ event: RoundEvent, _ facts: any RoundFacts, _ actions: inout [RoundAction]) throws(DTMError) {
        switch (phase, event) {
        case (.begin, .started):
            if facts.stopIfUnreadable(&actions) { return }
            roundStart = facts.now
            budget = Double(facts.config.requestTimeout) + 2
            if facts.transaction.status == .submitted && facts.isTimedOut {
                phase = .actionsSetUp
                return actions.append(.changeStatus(.aborting, reason: facts.timeoutReason))
            }
            try setUpActions(facts, &actions)
        case (.actionsSetUp, .idle):
            try setUpActions(facts, &actions)
        case (.actions, .branchFinished(let index, let outcome)):
            actionFinished(index, outcome, facts, &actions)
        case (.actions, .idle):
            actionsEnded(facts, &actions)
        case (.compensationsSetUp, .idle):
            setUpCompensations(facts, &actions)
        case (.compensations, .branchFinished(let index, let outcome)):
            running.remove(index)
            if outcome == .succeeded { compensated += 1 }
            if withinBudget(facts) { start(nextCompensations(facts), &actions) }
        case (.compensations, .idle):
            compensationsEnded(facts, &actions)
        default:
            impossibleEvent("saga phase \(phase), event \(event)", &actions)
        }
    }

    /// A saga action's FAILURE is final: the row fails and the saga will compensate (spec §8.2). Every other answer is
    /// read as in every mode.
    package func judge(_ result: BranchCallResult, row index: Int, _ facts: any RoundFacts) -> BranchVerdict {
        let branch = facts.branches[index]
        if case .failure(let text) = result, branch.op == BranchOp.action {
            return BranchVerdict(
                status: .failed, outcome: .failed("url:\(branch.url) return failed: \(text) FAILURE"), schedule: BranchVerdict.progressSchedule(facts))
        }
        return BranchVerdict.standard(result, facts)
    }

    // MARK: - Action phase

    private mutating func setUpActions(_ facts: any RoundFacts, _ actions: inout [RoundAction]) throws(DTMError) {
        let t = facts.transaction
        plan = try SagaPlan(stepCount: facts.branches.count / 2, customData: facts.customData.saga)
        let statuses = facts.branches.map(\.status)
        toStart = (0..<plan.stepCount).filter { statuses[SagaPlan.actionIndex($0)] == .prepared }.count
        failedBefore = (0..<plan.stepCount).contains { statuses[SagaPlan.actionIndex($0)] == .failed }
        // Stored, so from outside: kept within 0…limit, or a negative count would retry (almost) without end.
        retries = max(0, min(t.options.retryCount, facts.config.limits.maxRetryLimit))
        phase = .actions
        guard t.status == .submitted && !facts.isTimedOut && !failedBefore else { return actionsEnded(facts, &actions) }
        if !start(nextActions(facts), &actions) { actionsEnded(facts, &actions) }
    }

    private mutating func actionFinished(_ index: Int, _ outcome: BranchOutcome, _ facts: any RoundFacts, _ actions: inout [RoundAction]) {
        running.remove(index)
        var again = false
        switch outcome {
        case .succeeded:
            succeededNow += 1
        case .failed(let reason):
            failureReason = reason
        case .ongoing, .error:
            let limit = min(facts.transaction.options.retryLimit, facts.config.limits.maxRetryLimit)
            if limit > 0 && facts.transaction.status == .submitted && !abortRequested {
                if retries < limit {
                    retries += 1
                    again = true  // run it again at once
                } else {
                    abortRequested = true
                    actions.append(.changeStatus(.aborting, reason: "RetryCount is greater than RetryLimit, RetryLimit: \(limit)"))
                }
            }
        }
        guard withinBudget(facts) else { return }
        // A retried row first, then what may start now (`started` keeps the retried step out of that list).
        if again { start([index], &actions) }
        start(nextActions(facts), &actions)
    }

    /// Action rows that may start now: prepared, unblocked by the plan, not started in this round.
    private mutating func nextActions(_ facts: any RoundFacts) -> [Int] {
        guard facts.transaction.status == .submitted, !abortRequested, !facts.isTimedOut, failureReason.isEmpty else { return [] }
        let statuses = facts.branches.map(\.status)
        var next: [Int] = []
        for k in 0..<plan.stepCount where !started.contains(k) && !running.contains(SagaPlan.actionIndex(k)) {
            if statuses[SagaPlan.actionIndex(k)] == .prepared && plan.shouldRunAction(k, statuses: statuses) {
                started.insert(k)
                next.append(SagaPlan.actionIndex(k))
            }
        }
        return next
    }

    private mutating func actionsEnded(_ facts: any RoundFacts, _ actions: inout [RoundAction]) {
        phase = .compensationsSetUp
        if facts.transaction.status == .submitted {
            if failureReason.isEmpty && !failedBefore && succeededNow == toStart {
                actions.append(.changeStatus(.succeed))
                return actions.append(.finish(.ok))
            }
            if !failureReason.isEmpty || failedBefore {
                return actions.append(.changeStatus(.aborting, reason: failureReason.isEmpty ? "fail message lost" : failureReason))
            }
            if facts.isTimedOut { return actions.append(.changeStatus(.aborting, reason: facts.timeoutReason)) }
        }
        setUpCompensations(facts, &actions)
    }

    // MARK: - Compensation phase

    private mutating func setUpCompensations(_ facts: any RoundFacts, _ actions: inout [RoundAction]) {
        guard facts.transaction.status == .aborting else { return actions.append(.finish(.ok)) }
        phase = .compensations
        // An action that was started (or could start now) but has no definite answer may have executed: treat it
        // as done, in memory only, so that it is compensated. Which actions count as possibly run is decided on the
        // statuses as they are, before any is marked (marking step k first would make step k+1 look runnable
        // although it never ran).
        let before = facts.branches.map(\.status)
        view = before
        for k in 0..<plan.stepCount where before[SagaPlan.actionIndex(k)] == .prepared {
            if started.contains(k) || plan.shouldRunAction(k, statuses: before) {
                view[SagaPlan.actionIndex(k)] = .succeed
            }
        }
        toCompensate =
            (0..<plan.stepCount).filter {
                view[SagaPlan.compensateIndex($0)] != .succeed && view[SagaPlan.actionIndex($0)] != .prepared
            }.count
        if !withinBudget(facts) || !start(nextCompensations(facts), &actions) { compensationsEnded(facts, &actions) }
    }

    private func compensationsEnded(_ facts: any RoundFacts, _ actions: inout [RoundAction]) {
        if facts.transaction.status == .aborting && compensated == toCompensate { actions.append(.changeStatus(.failed)) }
        actions.append(.finish(.ok))
    }

    /// Compensation rows that may start now, from the last step to the first.
    private mutating func nextCompensations(_ facts: any RoundFacts) -> [Int] {
        guard facts.transaction.status == .aborting else { return [] }
        for k in 0..<plan.stepCount {
            view[SagaPlan.compensateIndex(k)] = facts.branches[SagaPlan.compensateIndex(k)].status
        }
        var next: [Int] = []
        for k in stride(from: plan.stepCount - 1, through: 0, by: -1) where !compensationStarted.contains(k) {
            let index = SagaPlan.compensateIndex(k)
            if view[index] == .prepared && !running.contains(index) && plan.shouldRollback(k, statuses: view) {
                compensationStarted.insert(k)
                next.append(index)
            }
        }
        return next
    }

    // MARK: - Helpers

    private func withinBudget(_ facts: any RoundFacts) -> Bool { facts.now.seconds(since: roundStart) < budget }

    /// A `.call` for each of `rows`, counted as running from now on; false when there is none.
    @discardableResult
    private mutating func start(_ rows: [Int], _ actions: inout [RoundAction]) -> Bool {
        for row in rows {
            running.insert(row)
            actions.append(.call(row))
        }
        return !rows.isEmpty
    }
}
