/// What a branch's answer means, decided by the mode's machine (`RoundStateMachine.judge`) and carried out by the
/// round: the row's new status (stored with the round's next write), what the machine then hears, and how the
/// schedule moves now.
package struct BranchVerdict: Sendable, Equatable {
    package var status: BranchStatus?
    package var outcome: BranchOutcome
    package var schedule: ScheduleUpdate?

    package init(status: BranchStatus?, outcome: BranchOutcome, schedule: ScheduleUpdate?) {
        self.status = status
        self.outcome = outcome
        self.schedule = schedule
    }

    /// DTM's reading of an answer for every mode (spec §8.8): success marks the row succeeded, ONGOING keeps the
    /// interval, anything else is an error retried with back-off (FAILURE too, with DTM's text, except where a mode
    /// gives it a meaning).
    package static func standard(_ result: BranchCallResult, _ facts: any RoundFacts) -> BranchVerdict {
        switch result {
        case .success:
            return BranchVerdict(status: .succeed, outcome: .succeeded, schedule: progressSchedule(facts))
        case .failure(let text):
            return BranchVerdict(
                status: nil,
                outcome: .error(
                    "your http/grpc result should be specified as in:\nhttp://d.dtm.pub/practice/arch.html#proto\nunkown result will be retried: \(text)"),
                schedule: .backOff)
        case .ongoing(let text):
            return BranchVerdict(status: nil, outcome: .ongoing(text), schedule: .keep)
        case .error(let text):
            return BranchVerdict(status: nil, outcome: .error(text), schedule: .backOff)
        }
    }

    /// After progress (a row succeeded or failed for good): the schedule goes back to the base interval when it was
    /// last moved 1.5 s ago or more (DTM's `lastTouched` rule, which also renews the cron lease), or at once when the
    /// interval had been backed off.
    package static func progressSchedule(_ facts: any RoundFacts) -> ScheduleUpdate? {
        let t = facts.transaction
        if facts.now.seconds(since: facts.lastScheduleMove) >= 1.5 || facts.config.isBackedOff(interval: t.nextCronInterval, options: t.options) {
            return .reset
        }
        return nil
    }
}
