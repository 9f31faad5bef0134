@testable import DTMCore
import Testing

/// The processors' decisions as tables of plain values: facts in, actions out, no store, no clock, no caller.
/// `PlainFacts` plays the runner: it applies the status changes and the branch statuses the machine decided, so a
/// whole round can be stepped through.
struct PlainFacts: RoundFacts {
    var transaction: GlobalTransaction
    var branches: [Branch]
    var customData: RoundCustomData
    var now = Timestamp(microseconds: 1_000_000_000_000)
    var lastScheduleMove = Timestamp(microseconds: 1_000_000_000_000)
    var config = EngineConfig()

    init(_ type: TransType, _ status: GlobalStatus, rows: [(op: String, status: BranchStatus)], options: TransOptions = TransOptions(), customData: String = "")
    {
        let created = Timestamp(microseconds: 1_000_000_000_000)
        transaction = GlobalTransaction(gid: "g", transType: type, status: status, createTime: created)
        transaction.options = options
        transaction.customData = customData
        transaction.queryPrepared = "http://127.0.0.1:1/query"
        self.customData = RoundCustomData.decode(customData, for: type, coding: JSONTestCoding())
        branches = rows.enumerated().map { i, row in
            Branch(gid: "g", url: "u\(i)", binData: [], branchID: String(format2(i / 2 + 1)), op: row.op, status: row.status, createTime: created)
        }
    }

    /// Saga rows `[compensate 1, action 1, …]` from a string of statuses, two letters per step (p, s, f).
    static func saga(_ status: GlobalStatus, _ rows: String, options: TransOptions = TransOptions(), customData: String = "") -> PlainFacts {
        let letters = Array(rows)
        return PlainFacts(
            .saga, status,
            rows: letters.indices.map { (op: $0 % 2 == 0 ? BranchOp.compensate : BranchOp.action, status: Self.status(letters[$0])) },
            options: options, customData: customData)
    }

    static func status(_ c: Character) -> BranchStatus { c == "s" ? .succeed : c == "f" ? .failed : .prepared }

    var rowStatuses: String {
        String(branches.map { $0.status == .succeed ? "s" : $0.status == .failed ? "f" : "p" })
    }

    /// What the runner does with an action the machine asked for (calls are answered by the table).
    mutating func apply(_ action: RoundAction) {
        if case .changeStatus(let status, let reason) = action {
            transaction.status = status
            if let reason { transaction.rollbackReason = reason }
        }
    }

    /// What the runner does with the machine's verdict on an answer: the row takes the status the machine decided.
    mutating func apply(_ verdict: BranchVerdict, row index: Int) -> BranchOutcome {
        if let status = verdict.status { branches[index].status = status }
        return verdict.outcome
    }
}

private func format2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

/// Steps a machine through one round: each `.call` is answered from `answers` (by row, in order; `.success` when
/// none is left) and judged by the machine, one call at a time in the order asked, as the runner does for
/// sequential rounds.
func drive<M: RoundStateMachine>(
    _ machine: inout M, _ facts: inout PlainFacts, answers: [Int: [BranchCallResult]] = [:], checkBack: BranchCallResult? = nil,
    clock: ((Int) -> Timestamp)? = nil
) throws -> (calls: [Int], actions: [RoundAction]) {
    var answers = answers
    var calls: [Int] = []
    var log: [RoundAction] = []
    var queue: [Int] = []
    var event = RoundEvent.started
    for step in 0..<200 {
        if let clock { facts.now = clock(step) }
        let actions = try machine.next(event, facts)
        log += actions
        var answer: BranchCallResult?
        for action in actions {
            switch action {
            case .finish: return (calls, log)
            case .call(let row): queue.append(row)
            case .checkBack: answer = checkBack
            default: facts.apply(action)
            }
        }
        if let answer {
            event = .checkBackAnswered(answer)
        } else if queue.isEmpty {
            event = .idle
        } else {
            let index = queue.removeFirst()
            calls.append(index)
            let result = answers[index]?.isEmpty == false ? answers[index]!.removeFirst() : .success
            let outcome = facts.apply(machine.judge(result, row: index, facts), row: index)
            event = .branchFinished(index: index, outcome: outcome)
        }
    }
    Issue.record("the machine never finished")
    return (calls, log)
}

@Suite("round state machines, on plain values")
struct RoundStateMachineTests {
    // MARK: - Saga

    @Test(
        "saga: state × answers → calls, final status, rows",
        arguments: [
            // (stored rows, answers, calls, final status, rows after)
            ("pppp", [:], [1, 3], GlobalStatus.succeed, "psps"),
            ("psps", [:], [], .succeed, "psps"),  // nothing left to run: succeed at once
            ("pppp", [3: [BranchCallResult.failure("no")]], [1, 3, 2, 0], .failed, "sssf"),
            ("pppp", [1: [.failure("no")]], [1, 0], .failed, "sfpp"),
            ("pppp", [3: [.ongoing("wait")]], [1, 3], .submitted, "pspp"),
            ("pppp", [1: [.error("down")]], [1], .submitted, "pppp"),
            ("pspf", [:], [2, 0], .failed, "sssf"),  // failed in an earlier round: compensate
        ] as [(String, [Int: [BranchCallResult]], [Int], GlobalStatus, String)])
    func sagaTable(rows: String, answers: [Int: [BranchCallResult]], calls: [Int], final: GlobalStatus, after: String) throws {
        var facts = PlainFacts.saga(.submitted, rows)
        var machine = SagaProcessor().round()
        let (made, _) = try drive(&machine, &facts, answers: answers)
        #expect(made == calls)
        #expect(facts.transaction.status == final)
        #expect(facts.rowStatuses == after)
    }

    @Test("saga: the rollback reason names the failed step's answer; a timed-out saga compensates what may have run")
    func sagaReasons() throws {
        var facts = PlainFacts.saga(.submitted, "pppp")
        var machine = SagaProcessor().round()
        _ = try drive(&machine, &facts, answers: [3: [.failure("no")]])
        #expect(facts.transaction.rollbackReason == "url:u3 return failed: no FAILURE")

        var late = PlainFacts.saga(.submitted, "pspp")
        late.transaction.options.timeoutToFail = 1
        late.now = late.transaction.createTime.adding(seconds: 5)
        var timedOut = SagaProcessor().round()
        let (calls, actions) = try drive(&timedOut, &late)
        #expect(actions.first == .changeStatus(.aborting, reason: "Timeout after 1 seconds"))
        #expect(calls == [2, 0])  // step 2 could have started, so it may have run: both are compensated
        #expect(late.transaction.status == .failed)
    }

    @Test("saga: retry_limit reruns an undecided action at once, then aborts with DTM's reason")
    func sagaRetryLimit() throws {
        var options = TransOptions()
        options.retryLimit = 2
        var facts = PlainFacts.saga(.submitted, "pp", options: options)
        var machine = SagaProcessor().round()
        let (calls, actions) = try drive(&machine, &facts, answers: [1: [.error("x"), .ongoing("y"), .error("z")]])
        #expect(calls == [1, 1, 1, 0])
        #expect(actions.contains(.changeStatus(.aborting, reason: "RetryCount is greater than RetryLimit, RetryLimit: 2")))
        #expect(facts.transaction.status == .failed)
    }

    @Test("saga: a concurrent saga starts every step at once, and compensates by the reverse of `orders`")
    func sagaConcurrent() throws {
        var facts = PlainFacts.saga(.submitted, "pppppp", customData: #"{"concurrent":true,"orders":{"2":[0,1]}}"#)
        var machine = SagaProcessor().round()
        let first = try machine.next(.started, facts)
        #expect(first == [.call(1), .call(3)])  // step 3 waits for steps 1 and 2
        let first1 = facts.apply(machine.judge(.success, row: 1, facts), row: 1)
        #expect(try machine.next(.branchFinished(index: 1, outcome: first1), facts) == [])
        let second = facts.apply(machine.judge(.failure("no"), row: 3, facts), row: 3)
        #expect(second == .failed("url:u3 return failed: no FAILURE"))
        #expect(try machine.next(.branchFinished(index: 3, outcome: second), facts) == [])
        let abort = try machine.next(.idle, facts)
        #expect(abort == [.changeStatus(.aborting, reason: "url:u3 return failed: no FAILURE")])
        facts.apply(abort[0])
        #expect(try machine.next(.idle, facts) == [.call(2), .call(0)])  // both compensations at once
    }

    @Test("saga: once the round's budget is spent no new call starts; the round ends for the cron loop")
    func sagaBudget() throws {
        var facts = PlainFacts.saga(.submitted, "pppp")
        var machine = SagaProcessor().round()
        let start = facts.now
        // Step 0 starts the round; every later step is 10 s on (budget: RequestTimeout 3 + 2 s).
        let (calls, actions) = try drive(&machine, &facts, clock: { $0 == 0 ? start : start.adding(seconds: 10) })
        #expect(calls == [1])
        #expect(facts.transaction.status == .submitted)
        #expect(actions.last == .finish(.ok))
    }

    @Test("saga: invalid orders are an error naming the step")
    func sagaBadOrders() {
        let facts = PlainFacts.saga(.submitted, "pppp", customData: #"{"orders":{"7":[0]}}"#)
        var machine = SagaProcessor().round()
        #expect(throws: DTMError.self) { _ = try machine.next(.started, facts) }
    }

    // MARK: - TCC and XA

    @Test(
        "tcc/xa: status × answers → calls and final status",
        arguments: [
            // (processor, status, rows ops, answers, calls, final)
            ("tcc", GlobalStatus.submitted, [:], [5, 3, 1], GlobalStatus.succeed),  // confirm last to first
            ("tcc", .aborting, [:], [4, 2, 0], .failed),  // cancel last to first
            ("xa", .submitted, [:], [1, 3, 5], .succeed),  // commit first to last
            ("xa", .aborting, [:], [0, 2, 4], .failed),
            ("tcc", .submitted, [3: [BranchCallResult.ongoing("later")]], [5, 3], .submitted),  // stops at the first undecided
            ("xa", .submitted, [3: [.error("down")]], [1, 3], .submitted),
            ("tcc", .prepared, [:], [], .prepared),  // not timed out: nothing
        ] as [(String, GlobalStatus, [Int: [BranchCallResult]], [Int], GlobalStatus)])
    func phaseTwoTable(mode: String, status: GlobalStatus, answers: [Int: [BranchCallResult]], calls: [Int], final: GlobalStatus) throws {
        let tcc = mode == "tcc"
        let ops = tcc ? [BranchOp.cancel, BranchOp.confirm] : [BranchOp.rollback, BranchOp.commit]
        var facts = PlainFacts(tcc ? .tcc : .xa, status, rows: (0..<6).map { (op: ops[$0 % 2], status: BranchStatus.prepared) })
        var machine = tcc ? TCCProcessor().round() : XAProcessor().round()
        let (made, _) = try drive(&machine, &facts, answers: answers)
        #expect(made == calls)
        #expect(facts.transaction.status == final)
    }

    @Test("tcc: a prepared transaction past its timeout is aborted, then cancelled")
    func tccTimeout() throws {
        var options = TransOptions()
        options.timeoutToFail = 1
        var facts = PlainFacts(.tcc, .prepared, rows: [(BranchOp.cancel, .prepared), (BranchOp.confirm, .prepared)], options: options)
        facts.now = facts.transaction.createTime.adding(seconds: 2)
        var machine = TCCProcessor().round()
        let (calls, actions) = try drive(&machine, &facts)
        #expect(actions.first == .changeStatus(.aborting, reason: "Timeout after 1 seconds"))
        #expect(calls == [0])
        #expect(facts.transaction.status == .failed)
    }

    // MARK: - Msg

    @Test(
        "msg: check-back answer → status and schedule",
        arguments: [
            (BranchCallResult.success, GlobalStatus.succeed, RoundAction.finish(.ok)),
            (.failure("no"), .failed, .finish(.ok)),
            (.ongoing("wait"), .prepared, .finish(.ongoing("wait"))),
            (.error("down"), .prepared, .finish(.error("down"))),
        ] as [(BranchCallResult, GlobalStatus, RoundAction)])
    func msgCheckBack(answer: BranchCallResult, final: GlobalStatus, last: RoundAction) throws {
        var options = TransOptions()
        options.timeoutToFail = 1
        var facts = PlainFacts(.msg, .prepared, rows: [(BranchOp.action, .prepared)], options: options)
        facts.now = facts.transaction.createTime.adding(seconds: 2)
        var machine = MsgProcessor().round()
        let (calls, actions) = try drive(&machine, &facts, checkBack: answer)
        #expect(actions.first == .checkBack(url: "http://127.0.0.1:1/query", op: BranchOp.msg, payload: []))
        #expect(facts.transaction.status == final)
        #expect(actions.last == last)
        #expect(calls == (answer == .success ? [0] : []))
        if case .ongoing = answer { #expect(actions.contains(.touch(.reset))) }
        if case .error = answer { #expect(actions.contains(.touch(.backOff))) }
    }

    @Test("msg: branches in order, stopping at the first undecided; concurrent: all at once; delay postpones")
    func msgBranches() throws {
        var facts = PlainFacts(.msg, .submitted, rows: [(BranchOp.action, .prepared), (BranchOp.action, .prepared), (BranchOp.action, .prepared)])
        var machine = MsgProcessor().round()
        var (calls, _) = try drive(&machine, &facts, answers: [1: [.ongoing("busy")]])
        #expect(calls == [0, 1])
        #expect(facts.transaction.status == .submitted)

        var options = TransOptions()
        options.concurrent = true
        var parallel = PlainFacts(.msg, .submitted, rows: [(BranchOp.action, .prepared), (BranchOp.action, .prepared)], options: options)
        var concurrentMachine = MsgProcessor().round()
        #expect(try concurrentMachine.next(.started, parallel) == [.call(0), .call(1)])
        let ok = parallel.apply(concurrentMachine.judge(.success, row: 0, parallel), row: 0)
        #expect(try concurrentMachine.next(.branchFinished(index: 0, outcome: ok), parallel) == [])
        let down = parallel.apply(concurrentMachine.judge(.error("x"), row: 1, parallel), row: 1)
        #expect(try concurrentMachine.next(.branchFinished(index: 1, outcome: down), parallel) == [])
        #expect(try concurrentMachine.next(.idle, parallel) == [.finish(.error("x"))])

        var delayed = PlainFacts(.msg, .submitted, rows: [(BranchOp.action, .prepared)], customData: #"{"delay":60}"#)
        var delayedMachine = MsgProcessor().round()
        (calls, _) = try drive(&delayedMachine, &delayed)
        #expect(calls.isEmpty)
        var again = MsgProcessor().round()
        #expect(try again.next(.started, delayed) == [.postpone(seconds: 60), .finish(.ok)])
    }

    // MARK: - Workflow

    @Test("workflow: an unfinished workflow is resumed through query_prepared; a failed call is logged, never fatal")
    func workflow() throws {
        var facts = PlainFacts(.workflow, .prepared, rows: [], customData: #"{"name":"wf","data":"AQI="}"#)
        var machine = WorkflowProcessor().round()
        #expect(try machine.next(.started, facts) == [.checkBack(url: "http://127.0.0.1:1/query", op: "wf", payload: [1, 2])])
        #expect(try machine.next(.checkBackAnswered(.error("down")), facts) == [.warn("workflow resume call failed", error: "down"), .finish(.ok)])
        facts.transaction.status = .succeed
        var finished = WorkflowProcessor().round()
        #expect(try finished.next(.started, facts) == [.finish(.ok)])
    }
}

/// Every mode × stored status × (timed out or not) × how branches answer × how the check-back answers, each a whole
/// round driven as the runner drives it: the round finishes, names only rows that exist, never moves a status back
/// to prepared, and leaves a finished transaction untouched.
@Suite("round state machines: every state × event")
struct RoundStateMachineSweepTests {
    static let statuses: [GlobalStatus] = [.prepared, .submitted, .aborting, .succeed, .failed]
    static let branchAnswers: [BranchCallResult] = [.success, .failure("f"), .ongoing("o"), .error("e")]
    static let checkBackAnswers: [BranchCallResult] = [.success, .failure("f"), .ongoing("o"), .error("e")]

    static func facts(_ type: TransType, _ status: GlobalStatus, timedOut: Bool) -> PlainFacts {
        var options = TransOptions()
        options.timeoutToFail = 1
        options.retryLimit = 1
        let rows: [(op: String, status: BranchStatus)] =
            switch type {
            case .saga: [(BranchOp.compensate, .prepared), (BranchOp.action, .prepared), (BranchOp.compensate, .prepared), (BranchOp.action, .prepared)]
            case .msg: [(BranchOp.action, .prepared), (BranchOp.action, .prepared)]
            case .tcc: [(BranchOp.cancel, .prepared), (BranchOp.confirm, .prepared)]
            case .xa: [(BranchOp.rollback, .prepared), (BranchOp.commit, .prepared)]
            case .workflow: []
            }
        var facts = PlainFacts(type, status, rows: rows, options: options)
        if timedOut { facts.now = facts.transaction.createTime.adding(seconds: 5) }
        return facts
    }

    static func round(
        _ type: TransType, _ facts: inout PlainFacts, _ answer: BranchCallResult, _ checkBack: BranchCallResult
    ) throws -> (
        calls: [Int], actions: [RoundAction]
    ) {
        let answers = Dictionary(uniqueKeysWithValues: facts.branches.indices.map { ($0, [answer, answer, answer]) })
        switch type {
        case .saga:
            var m = SagaProcessor().round()
            return try drive(&m, &facts, answers: answers, checkBack: checkBack)
        case .msg:
            var m = MsgProcessor().round()
            return try drive(&m, &facts, answers: answers, checkBack: checkBack)
        case .tcc:
            var m = TCCProcessor().round()
            return try drive(&m, &facts, answers: answers, checkBack: checkBack)
        case .xa:
            var m = XAProcessor().round()
            return try drive(&m, &facts, answers: answers, checkBack: checkBack)
        case .workflow:
            var m = WorkflowProcessor().round()
            return try drive(&m, &facts, answers: answers, checkBack: checkBack)
        }
    }

    @Test("every mode × status × timeout × branch answer × check-back answer", arguments: [TransType.saga, .msg, .tcc, .xa, .workflow])
    func sweep(type: TransType) throws {
        for status in Self.statuses {
            for timedOut in [false, true] {
                for answer in Self.branchAnswers {
                    for checkBack in Self.checkBackAnswers {
                        var facts = Self.facts(type, status, timedOut: timedOut)
                        let (calls, actions) = try Self.round(type, &facts, answer, checkBack)
                        let label = "\(type) \(status) timedOut=\(timedOut) \(answer) \(checkBack): \(actions)"
                        #expect(actions.last.map { if case .finish = $0 { true } else { false } } == true, "\(label)")
                        #expect(calls.allSatisfy { facts.branches.indices.contains($0) }, "\(label)")
                        for case .changeStatus(let to, _) in actions {
                            #expect(to != .prepared, "\(label)")
                        }
                        if status == .succeed || status == .failed {
                            #expect(calls.isEmpty && facts.transaction.status == status, "\(label)")
                        }
                    }
                }
            }
        }
    }
}
