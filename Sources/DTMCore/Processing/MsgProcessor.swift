/// `custom_data` of a msg: `{"delay": <seconds>}`.
public struct MsgCustomData: Sendable, Equatable, Decodable {
    public var delay: Int64?
}

/// Two-phase message rounds (spec §8.3): once a prepared msg times out, ask `query_prepared`; a submitted msg
/// calls its branches (in order, or all at once when `concurrent`) until every one succeeded. A msg branch can
/// only succeed: FAILURE is retried like any error.
public struct MsgProcessor: ModeProcessor {
    public init() {}

    public func processOnce(_ round: TransactionRound) async throws -> RoundResult {
        if round.transaction.status == .prepared && round.isTimedOut {
            let t = round.transaction
            switch await round.callCheckBack(url: t.queryPrepared, op: BranchOp.msg, payload: []) {
            case .success:
                try await round.changeStatus(to: .submitted)
            case .failure:
                try await round.changeStatus(to: .failed)
                return .ok
            case .ongoing(let m):
                try await round.touch(.reset)
                return .ongoing(m)
            case .error(let m):
                try await round.touch(.backOff)
                return .error(m)
            }
        }
        guard round.transaction.status == .submitted else { return .ok }

        let custom =
            round.transaction.customData.isEmpty
            ? nil : try? round.context.coding.decode(MsgCustomData.self, from: round.transaction.customData)
        if let delay = custom?.delay, delay > 0, round.now.seconds(since: round.transaction.createTime) < Double(delay) {
            try await round.postpone(seconds: delay)
            return .ok
        }

        let pending = round.branches.indices.filter { round.branches[$0].op == BranchOp.action && round.branches[$0].status == .prepared }
        if round.transaction.options.concurrent {
            let caller = round.context.caller
            let calls = pending.map { ($0, round.branchCall(index: $0)) }
            var firstProblem: RoundResult?
            try await round.settle()
            try await withThrowingTaskGroup(of: (Int, BranchCallResult).self) { group in
                for (index, call) in calls { group.addTask { (index, await TransactionRound.call(call, caller: caller)) } }
                var inFlight = calls.count
                for try await (index, result) in group {
                    inFlight -= 1
                    let outcome = try await round.record(result, index: index)
                    if firstProblem == nil { firstProblem = Self.problem(outcome) }
                    if inFlight > 0 { try await round.settle() }
                }
            }
            if let firstProblem { return firstProblem }
        } else {
            for index in pending {
                if let problem = Self.problem(try await round.execBranch(index: index)) { return problem }
            }
        }
        try await round.changeStatus(to: .succeed)
        return .ok
    }

    private static func problem(_ outcome: BranchOutcome) -> RoundResult? {
        switch outcome {
        case .succeeded: return nil
        case .ongoing(let m): return .ongoing(m)
        case .error(let m), .failed(let m): return .error(m)
        }
    }
}
