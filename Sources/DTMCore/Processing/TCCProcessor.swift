/// TCC rounds (spec §8.4): confirm every registered branch after submit, cancel every one after abort or
/// timeout, both from the last registered branch to the first. The server never calls `try`.
package struct TCCProcessor: ModeProcessor {
    package init() {}
    package func round() -> PhaseTwoRound { PhaseTwoRound(commitOp: BranchOp.confirm, rollbackOp: BranchOp.cancel, lastToFirst: true) }
}
