/// XA rounds (spec §8.5): commit after submit, rollback after abort or timeout, first to last, always POST.
package struct XAProcessor: ModeProcessor {
    package init() {}
    package func round() -> PhaseTwoRound { PhaseTwoRound(commitOp: BranchOp.commit, rollbackOp: BranchOp.rollback, lastToFirst: false) }
}
