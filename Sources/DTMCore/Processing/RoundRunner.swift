/// Performs the decisions of a mode's state machine for one round, the same way for every mode: branch calls one at
/// a time in the round's task, or in a task group once two may run together; each answer judged by the machine and
/// that verdict carried out in the round's task before the machine hears the outcome; the clock read once per
/// decision; branch statuses stored before the next call starts or is waited on
/// (`UpdateBranchSync`, in `TransactionRound.settle`); status changes, schedule moves and check-backs as asked.
///
/// Before each call it starts, the round holds the transaction's lease for the call's timeout (`holdLease`); a round
/// that has lost it to another coordinator starts nothing more, writes no schedule and ends with an error.
enum RoundRunner {
    static func run<P: ModeProcessor>(_ processor: P, _ round: TransactionRound) async throws -> RoundResult {
        do {
            return try await runMachine(processor, round)
        } catch let lost as LeaseLost {
            round.logger.warning("lease lost: another coordinator holds the transaction; no further calls from this round")
            return .error(lost.description)
        }
    }

    private static func runMachine<P: ModeProcessor>(_ processor: P, _ round: TransactionRound) async throws -> RoundResult {
        var machine = processor.round()
        var event = RoundEvent.started
        // One buffer for every decision of the round: deciding allocates nothing.
        var actions: [RoundAction] = []
        actions.reserveCapacity(4)
        var calls: [Int] = []
        // A bound on decisions, so that a machine that never finishes cannot hold a round for ever: every row may be
        // run once per allowed retry, and each run takes at most a few decisions.
        let maxDecisions = 4 * (round.branches.count + 4) * (Int(round.config.limits.maxRetryLimit) + 2)
        var decisions = 0
        while true {
            decisions += 1
            if decisions > maxDecisions {
                round.logger.error("round stopped: the processor made more decisions than a round can need", metadata: ["decisions": "\(decisions)"])
                return .error("round stopped after \(maxDecisions) decisions")
            }
            actions.removeAll(keepingCapacity: true)
            calls.removeAll(keepingCapacity: true)
            round.startDecision()
            try machine.next(event, round, &actions)
            if actions.isEmpty && event == .idle { return .ok }  // a machine with nothing left to do
            var answer: BranchCallResult?
            for action in actions {
                switch action {
                case .finish(let result): return result
                case .call(let row): calls.append(row)
                default: answer = try await perform(action, round) ?? answer
                }
            }
            if let answer {
                event = .checkBackAnswered(answer)
            } else if calls.isEmpty {
                event = .idle
            } else if calls.count == 1 {
                // One call at a time (every sequential saga, TCC, XA): awaited in this task, no task per call.
                let index = calls[0]
                try await round.settle()
                try await round.holdLease()
                let result = await BranchCallTrace.call(round.context.caller, round.branchCall(index: index), round: round.span)
                round.startDecision()
                event = .branchFinished(index: index, outcome: try await round.record(machine.judge(result, row: index, round), index: index))
            } else {
                if let result = try await concurrently(calls, &machine, &actions, round) { return result }
                event = .idle
            }
        }
    }

    /// Runs `first` and whatever the machine starts as results come back, in a task group, until none is running.
    /// Returns the machine's result if it finished meanwhile (the calls still running are awaited and recorded).
    private static func concurrently<M: RoundStateMachine>(
        _ first: [Int], _ machine: inout M, _ actions: inout [RoundAction], _ round: TransactionRound
    ) async throws -> RoundResult? {
        let caller = round.context.caller
        let span = round.span
        return try await withThrowingTaskGroup(of: (Int, BranchCallResult).self) { group in
            var running = 0
            func start(_ index: Int) {
                let call = round.branchCall(index: index)
                running += 1
                group.addTask { (index, await BranchCallTrace.call(caller, call, round: span)) }
            }
            try await round.settle()
            try await round.holdLease()
            for index in first { start(index) }
            var finished: RoundResult?
            // Set when the lease could not be renewed: the calls running finish and are recorded, none starts.
            var lost: LeaseLost?
            while let (index, result) = try await group.next() {
                running -= 1
                round.startDecision()
                let outcome = try await round.record(machine.judge(result, row: index, round), index: index)
                if finished != nil { continue }
                actions.removeAll(keepingCapacity: true)
                round.startDecision()
                try machine.next(.branchFinished(index: index, outcome: outcome), round, &actions)
                var startsMore = false
                for action in actions {
                    switch action {
                    case .finish(let result): finished = result
                    case .call: startsMore = true
                    default: _ = try await perform(action, round)
                    }
                }
                if finished != nil || lost != nil { continue }
                if running > 0 || startsMore { try await round.settle() }
                if startsMore {
                    do { try await round.holdLease() } catch let error as LeaseLost {
                        lost = error
                        continue
                    }
                }
                for case .call(let row) in actions { start(row) }
            }
            if let lost { throw lost }
            return finished
        }
    }

    /// Performs one action other than `call` and `finish`; a check-back's answer is returned.
    private static func perform(_ action: RoundAction, _ round: TransactionRound) async throws -> BranchCallResult? {
        switch action {
        case .changeStatus(let status, let reason):
            try await round.changeStatus(to: status, rollbackReason: reason)
        case .touch(let update):
            try await round.touch(update)
        case .postpone(let seconds):
            try await round.postpone(seconds: seconds)
        case .checkBack(let url, let op, let payload):
            return try await round.callCheckBack(url: url, op: op, payload: payload)
        case .warn(let message, let error):
            round.logger.warning("\(message)", metadata: ["error": .string(error)])
        case .call, .finish:
            break
        }
        return nil
    }
}
