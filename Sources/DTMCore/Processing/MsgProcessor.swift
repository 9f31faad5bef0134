/// `custom_data` of a msg: `{"delay": <seconds>}`.
public struct MsgCustomData: Sendable, Equatable, Decodable {
    public var delay: Int64?
}

/// Two-phase message rounds (spec §8.3): once a prepared msg times out, ask `query_prepared`; a submitted msg
/// calls its branches (in order, or all at once when `concurrent`) until every one succeeded. A msg branch can
/// only succeed: FAILURE is retried like any error.
public struct MsgProcessor: ModeProcessor {
    public init() {}
    public func round() -> MsgRound { MsgRound() }
}

public struct MsgRound: RoundStateMachine {
    /// The first branch that did not succeed in a concurrent phase: reported once every call is back.
    private var firstProblem: RoundResult?
    private var branchesStarted = false

    public mutating func next(_ event: RoundEvent, _ facts: any RoundFacts) -> [RoundAction] {
        switch event {
        case .started:
            let t = facts.transaction
            if t.status == .prepared && facts.isTimedOut {
                return [.checkBack(url: t.queryPrepared, op: BranchOp.msg, payload: [])]
            }
            return submitted(facts)
        case .checkBackAnswered(let answer):
            switch answer {
            case .success: return [.changeStatus(.submitted)]
            case .failure: return [.changeStatus(.failed), .finish(.ok)]
            case .ongoing(let m): return [.touch(.reset), .finish(.ongoing(m))]
            case .error(let m): return [.touch(.backOff), .finish(.error(m))]
            }
        case .branchFinished(_, let outcome):
            let problem = Self.problem(outcome)
            if facts.transaction.options.concurrent {
                if firstProblem == nil { firstProblem = problem }
                return []  // the rest are still running; the end comes with `.idle`
            }
            if let problem { return [.finish(problem)] }
            return nextSequential(facts)
        case .idle:
            if branchesStarted {
                if let firstProblem { return [.finish(firstProblem)] }
                return nextSequential(facts)
            }
            return submitted(facts)
        }
    }

    /// A submitted msg: wait for its delay, then call its branches.
    private mutating func submitted(_ facts: any RoundFacts) -> [RoundAction] {
        let t = facts.transaction
        guard t.status == .submitted else { return [.finish(.ok)] }
        let custom = t.customData.isEmpty ? nil : try? facts.coding.decode(MsgCustomData.self, from: t.customData)
        if let delay = custom?.delay, delay > 0, facts.now.seconds(since: t.createTime) < Double(delay) {
            return [.postpone(seconds: delay), .finish(.ok)]
        }
        branchesStarted = true
        let pending = Self.pending(facts)
        if t.options.concurrent && !pending.isEmpty { return [.call(pending)] }
        return nextSequential(facts)
    }

    private func nextSequential(_ facts: any RoundFacts) -> [RoundAction] {
        if facts.transaction.options.concurrent { return [.changeStatus(.succeed), .finish(.ok)] }
        guard let index = Self.pending(facts).first else { return [.changeStatus(.succeed), .finish(.ok)] }
        return [.call([index])]
    }

    private static func pending(_ facts: any RoundFacts) -> [Int] {
        facts.branches.indices.filter { facts.branches[$0].op == BranchOp.action && facts.branches[$0].status == .prepared }
    }

    private static func problem(_ outcome: BranchOutcome) -> RoundResult? {
        switch outcome {
        case .succeeded: return nil
        case .ongoing(let m): return .ongoing(m)
        case .error(let m), .failed(let m): return .error(m)
        }
    }
}
