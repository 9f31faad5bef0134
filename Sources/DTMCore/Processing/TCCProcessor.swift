/// TCC rounds (spec §8.4): confirm every registered branch after submit, cancel every one after abort or
/// timeout, both from the last registered branch to the first. The server never calls `try`.
public struct TCCProcessor: ModeProcessor {
    public init() {}

    public func processOnce(_ round: TransactionRound) async throws -> RoundResult {
        try await PhaseTwoProcessor(commitOp: BranchOp.confirm, rollbackOp: BranchOp.cancel, lastToFirst: true).processOnce(round)
    }
}

/// XA rounds (spec §8.5): commit after submit, rollback after abort or timeout, first to last, always POST.
public struct XAProcessor: ModeProcessor {
    public init() {}

    public func processOnce(_ round: TransactionRound) async throws -> RoundResult {
        try await PhaseTwoProcessor(commitOp: BranchOp.commit, rollbackOp: BranchOp.rollback, lastToFirst: false).processOnce(round)
    }
}

/// The shared shape of TCC and XA: a prepared transaction that times out is aborted; then one op is run on
/// every row that has it, in order, stopping at the first row without a definite success.
struct PhaseTwoProcessor {
    let commitOp: String
    let rollbackOp: String
    let lastToFirst: Bool

    func processOnce(_ round: TransactionRound) async throws -> RoundResult {
        if round.transaction.status == .prepared {
            guard round.isTimedOut else { return .ok }
            try await round.changeStatus(to: .aborting, rollbackReason: round.timeoutReason)
        }
        let status = round.transaction.status
        guard status == .submitted || status == .aborting else { return .ok }
        let op = status == .submitted ? commitOp : rollbackOp
        let order = lastToFirst ? Array(round.branches.indices.reversed()) : Array(round.branches.indices)
        for index in order where round.branches[index].op == op && round.branches[index].status != .succeed {
            switch try await round.execBranch(index: index) {
            case .succeeded: continue
            case .ongoing(let m): return .ongoing(m)
            case .error(let m), .failed(let m): return .error(m)
            }
        }
        try await round.changeStatus(to: status == .submitted ? .succeed : .failed)
        return .ok
    }
}
