@testable import DTMCore
import DTMTestSupport
import Testing

/// What is decided at the round's boundary: custom data decoded once, and a stored transaction the machines cannot
/// read backed off and logged instead of run with a default in its place.
@Suite("round boundary")
struct RoundBoundaryTests {
    @Test(
        "custom_data is decoded once per round, by mode; empty is none (a workflow's default)",
        arguments: [
            (TransType.saga, #"{"orders":{"1":[0]},"concurrent":true}"#, RoundCustomData.saga(SagaCustomData(orders: ["1": [0]], concurrent: true))),
            (.saga, "", .none),
            (.msg, #"{"delay":5}"#, .msg(MsgCustomData(delay: 5))),
            (.msg, "", .none),
            (.workflow, #"{"name":"wf","data":"AQI="}"#, .workflow(WorkflowCustomData(data: "AQI=", name: "wf"))),
            (.workflow, "", .workflow(WorkflowCustomData())),
            (.tcc, "not json at all", .none),
        ] as [(TransType, String, RoundCustomData)])
    func decoded(type: TransType, text: String, expected: RoundCustomData) {
        #expect(RoundCustomData.decode(text, for: type, coding: JSONTestCoding()) == expected)
    }

    @Test("a stored saga, msg or workflow whose custom_data cannot be read calls nothing, is backed off and keeps its error")
    func unreadableIsBackedOff() async throws {
        for type in [TransType.saga, .msg, .workflow] {
            let h = Harness()
            let gid = "bad-\(type.rawValue)"
            var t = GlobalTransaction(gid: gid, transType: type, status: type == .workflow ? .prepared : .submitted, createTime: h.clock.now())
            t.customData = #"{"orders": "#  // cut off: no mode can read it
            t.queryPrepared = "q"
            t.nextCronInterval = 10
            t.nextCronTime = h.clock.now()
            t.options.timeoutToFail = 1
            let rows =
                type == .workflow
                ? [] : [Branch(gid: gid, url: "a1", binData: [], branchID: "01", op: BranchOp.action, createTime: h.clock.now())]
            #expect(try await h.store.saveNew(t, branches: rows) == nil)
            h.clock.advance(2)
            #expect(try await h.coordinator.cronOnce() == [gid])
            #expect(h.caller.calls.isEmpty, "\(type): \(h.caller.trail)")
            let stored = try #require(try await h.store.transaction(gid: gid))
            #expect(stored.status == t.status, "\(type)")
            #expect(stored.nextCronInterval == 20, "\(type): backed off from 10 s")
            let attention = try await h.store.unfinishedOldest(limit: 10)
            #expect(attention.first?.lastError.contains("custom_data of this \(type.rawValue) cannot be read") == true, "\(attention)")
        }
    }

    @Test("a saga's FAILURE is final only for an action: the machine decides, the round carries it out")
    func sagaJudgesFailure() {
        let facts = PlainFacts.saga(.aborting, "pfpp")
        let machine = SagaProcessor().round()
        let onAction = machine.judge(.failure("no money"), row: 3, facts)
        #expect(onAction.status == .failed && onAction.outcome == .failed("url:u3 return failed: no money FAILURE"))
        let onCompensation = machine.judge(.failure("no"), row: 0, facts)
        #expect(onCompensation.status == nil && onCompensation.schedule == .backOff)
        if case .error(let text) = onCompensation.outcome {
            #expect(text.contains("unkown result will be retried: no"))
        } else {
            Issue.record("a compensation's FAILURE must be retried: \(onCompensation)")
        }
        let tcc = TCCProcessor().round()
        #expect(tcc.judge(.failure("no"), row: 0, PlainFacts(.tcc, .aborting, rows: [(BranchOp.cancel, .prepared)])).schedule == .backOff)
    }
}
