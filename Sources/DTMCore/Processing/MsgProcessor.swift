/// `custom_data` of a msg: `{"delay": <seconds>}`.
package struct MsgCustomData: Sendable, Equatable, Decodable {
    package var delay: Int64?
}

/// Two-phase message rounds (spec §8.3): once a prepared msg times out, ask `query_prepared`; a submitted msg
/// calls its branches (in order, or all at once when `concurrent`) until every one succeeded. A msg branch can
/// only succeed: FAILURE is retried like any error.
package struct MsgProcessor: ModeProcessor {
    package init() {}
    package func round() -> MsgRound { MsgRound() }
}

package struct MsgRound: RoundStateMachine {
    /// The first branch that did not succeed in a concurrent phase: reported once every call is back.
    private var firstProblem: RoundResult?
    private var branchesStarted = false

    package mutating func next(_ event: RoundEvent, _ facts: any RoundFacts, _ actions: inout [RoundAction]) {
        switch event {
        case .started:
            if facts.stopIfUnreadable(&actions) { return }
            let t = facts.transaction
            if t.status == .prepared && facts.isTimedOut {
                return actions.append(.checkBack(url: t.queryPrepared, op: BranchOp.msg, payload: []))
            }
            submitted(facts, &actions)
        case .checkBackAnswered(let answer):
            switch answer {
            case .success:
                actions.append(.changeStatus(.submitted))
            case .failure:
                actions.append(.changeStatus(.failed))
                actions.append(.finish(.ok))
            case .ongoing(let m):
                actions.append(.touch(.reset))
                actions.append(.finish(.ongoing(m)))
            case .error(let m):
                actions.append(.touch(.backOff))
                actions.append(.finish(.error(m)))
            }
        case .branchFinished(_, let outcome):
            let problem = Self.problem(outcome)
            if facts.transaction.options.concurrent {
                if firstProblem == nil { firstProblem = problem }
                return  // the rest are still running; the end comes with `.idle`
            }
            if let problem { return actions.append(.finish(problem)) }
            nextSequential(facts, &actions)
        case .idle:
            guard branchesStarted else { return submitted(facts, &actions) }
            if let firstProblem { return actions.append(.finish(firstProblem)) }
            nextSequential(facts, &actions)
        }
    }

    /// A submitted msg: wait for its delay, then call its branches.
    private mutating func submitted(_ facts: any RoundFacts, _ actions: inout [RoundAction]) {
        let t = facts.transaction
        guard t.status == .submitted else { return actions.append(.finish(.ok)) }
        if let delay = facts.customData.msg?.delay, delay > 0, facts.now.seconds(since: t.createTime) < Double(delay) {
            actions.append(.postpone(seconds: delay))
            return actions.append(.finish(.ok))
        }
        branchesStarted = true
        if t.options.concurrent {
            let before = actions.count
            for index in facts.branches.indices where Self.isPending(facts.branches[index]) { actions.append(.call(index)) }
            if actions.count > before { return }
        }
        nextSequential(facts, &actions)
    }

    private func nextSequential(_ facts: any RoundFacts, _ actions: inout [RoundAction]) {
        if !facts.transaction.options.concurrent, let index = facts.branches.firstIndex(where: Self.isPending) {
            return actions.append(.call(index))
        }
        actions.append(.changeStatus(.succeed))
        actions.append(.finish(.ok))
    }

    private static func isPending(_ branch: Branch) -> Bool { branch.op == BranchOp.action && branch.status == .prepared }

    private static func problem(_ outcome: BranchOutcome) -> RoundResult? {
        switch outcome {
        case .succeeded: return nil
        case .ongoing(let m): return .ongoing(m)
        case .error(let m), .failed(let m): return .error(m)
        }
    }
}
