/// What a processor tells the round runner to do next. Processors decide; `RoundRunner` performs.
package enum RoundAction: Sendable, Equatable {
    /// Compare-and-set of the global status (with the rollback reason for `aborting`).
    case changeStatus(GlobalStatus, reason: String? = nil)
    /// Start this branch row now, beside any still running (several `call`s in one answer run together). Each
    /// result is recorded (the branch status, the schedule, an alert) before the processor hears of it.
    case call(Int)
    /// Call a URL that is not a branch row — the msg check-back or the workflow resume — as branch `00`.
    case checkBack(url: String, op: String, payload: [UInt8])
    /// Move the schedule.
    case touch(ScheduleUpdate)
    /// Next round at now + `seconds`, the interval unchanged (msg `delay`).
    case postpone(seconds: Int64)
    /// Log a warning in the round's name (its gid and trans_type).
    case warn(String, error: String)
    /// The round is over.
    case finish(RoundResult)
}

/// What happened since the processor last decided.
package enum RoundEvent: Sendable, Equatable {
    /// The round begins.
    case started
    /// Branch row `index` answered; its result is already recorded in the facts.
    case branchFinished(index: Int, outcome: BranchOutcome)
    /// The check-back answered.
    case checkBackAnswered(BranchCallResult)
    /// The previous actions are done and no call is running.
    case idle
}

/// The facts a processor decides on, read-only: the transaction and its branches as they are now (after every
/// write of this round), its custom data decoded, the time of this decision (one reading per event), when the schedule
/// last moved, the configuration.
package protocol RoundFacts {
    var transaction: GlobalTransaction { get }
    var branches: [Branch] { get }
    var customData: RoundCustomData { get }
    var now: Timestamp { get }
    var lastScheduleMove: Timestamp { get }
    var config: EngineConfig { get }
}

extension RoundFacts {
    package var isTimedOut: Bool { config.isTimedOut(transaction, now: now) }
    /// The text DTM uses for a timeout (spec §17.23 recommends the effective value; tests match `\d+`).
    package var timeoutReason: String { "Timeout after \(config.effectiveTimeout(for: transaction)) seconds" }
}

/// One mode's decisions for one round, as a value: told each event with the facts, it appends the actions to take,
/// in order, to `actions` (empty on entry; the runner reuses one buffer, so deciding allocates nothing). No I/O and no
/// `async`: every transition can be tested with plain values.
package protocol RoundStateMachine {
    mutating func next(_ event: RoundEvent, _ facts: any RoundFacts, _ actions: inout [RoundAction]) throws(DTMError)
    /// What `result` of the call to row `index` means; the round carries it out before the machine hears the outcome.
    func judge(_ result: BranchCallResult, row index: Int, _ facts: any RoundFacts) -> BranchVerdict
}

extension RoundStateMachine {
    package func judge(_ result: BranchCallResult, row index: Int, _ facts: any RoundFacts) -> BranchVerdict {
        BranchVerdict.standard(result, facts)
    }
}

extension RoundFacts {
    /// The round's custom data cannot be read: log it, back off, end the round. True when that was appended.
    func stopIfUnreadable(_ actions: inout [RoundAction]) -> Bool {
        guard case .unreadable(let problem) = customData else { return false }
        actions.append(.warn("transaction cannot be processed; backing off", error: problem))
        actions.append(.touch(.backOff))
        actions.append(.finish(.error(problem)))
        return true
    }
}

/// An event a machine cannot receive in its phase: a programmer error. Debug builds stop; release builds log it as
/// an internal error and back the round off, never report success.
func impossibleEvent(_ what: @autoclosure () -> String, _ actions: inout [RoundAction]) {
    let description = what()
    assertionFailure("impossible round event: \(description)")
    actions.append(.warn("internal error: impossible round event; backing off", error: description))
    actions.append(.touch(.backOff))
    actions.append(.finish(.error("internal error: impossible round event \(description)")))
}

extension RoundStateMachine {
    /// The actions for one event, as a new array (tests and tools; the runner passes its own buffer).
    package mutating func next(_ event: RoundEvent, _ facts: any RoundFacts) throws(DTMError) -> [RoundAction] {
        var actions: [RoundAction] = []
        try next(event, facts, &actions)
        return actions
    }
}

/// One mode's processing (saga, msg, tcc, xa, workflow), as DTM's `ProcessOnce`: the state machine of a round.
package protocol ModeProcessor: Sendable {
    associatedtype Round: RoundStateMachine
    func round() -> Round
}
