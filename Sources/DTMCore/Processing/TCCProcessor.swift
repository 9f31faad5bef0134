/// TCC rounds (spec §8.4): confirm every registered branch after submit, cancel every one after abort or
/// timeout, both from the last registered branch to the first. The server never calls `try`.
public struct TCCProcessor: ModeProcessor {
    public init() {}
    public func round() -> PhaseTwoRound { PhaseTwoRound(commitOp: BranchOp.confirm, rollbackOp: BranchOp.cancel, lastToFirst: true) }
}
