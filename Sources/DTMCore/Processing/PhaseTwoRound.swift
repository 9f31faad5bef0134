/// The shared shape of TCC and XA: a prepared transaction that times out is aborted; then one op is run on
/// every row that has it, in order, stopping at the first row without a definite success.
package struct PhaseTwoRound: RoundStateMachine {
    let commitOp: String
    let rollbackOp: String
    let lastToFirst: Bool

    package mutating func next(_ event: RoundEvent, _ facts: any RoundFacts, _ actions: inout [RoundAction]) {
        switch event {
        case .started:
            if facts.transaction.status == .prepared {
                guard facts.isTimedOut else { return actions.append(.finish(.ok)) }
                return actions.append(.changeStatus(.aborting, reason: facts.timeoutReason))
            }
            nextBranch(facts, &actions)
        case .branchFinished(_, let outcome):
            switch outcome {
            case .succeeded: nextBranch(facts, &actions)
            case .ongoing(let m): actions.append(.finish(.ongoing(m)))
            case .error(let m), .failed(let m): actions.append(.finish(.error(m)))
            }
        case .idle:
            nextBranch(facts, &actions)
        case .checkBackAnswered:
            impossibleEvent("\(commitOp)/\(rollbackOp) round event \(event) (no check-back in this mode)", &actions)
        }
    }

    /// The next row of this phase's op without a success, in order; or the end of the phase.
    private func nextBranch(_ facts: any RoundFacts, _ actions: inout [RoundAction]) {
        let status = facts.transaction.status
        guard status == .submitted || status == .aborting else { return actions.append(.finish(.ok)) }
        let op = status == .submitted ? commitOp : rollbackOp
        let branches = facts.branches
        let next =
            lastToFirst
            ? branches.indices.last(where: { branches[$0].op == op && branches[$0].status != .succeed })
            : branches.indices.first(where: { branches[$0].op == op && branches[$0].status != .succeed })
        if let next { return actions.append(.call(next)) }
        actions.append(.changeStatus(status == .submitted ? .succeed : .failed))
        actions.append(.finish(.ok))
    }
}
