@testable import DTMCore
import Testing

extension Harness {
    func tcc(_ gid: String, branches: Int, waitResult: Bool = true) async throws {
        var r = TransactionRequest(gid: gid, transType: "tcc")
        r.options.waitResult = waitResult
        try await coordinator.prepare(r)
        for i in 1...branches {
            try await coordinator.registerBranch(
                BranchRegistration(
                    gid: gid, transType: "tcc", branchID: "0\(i)", data: ["confirm": "confirm\(i)", "cancel": "cancel\(i)"], busiPayload: Array("d\(i)".utf8)))
        }
    }

    func xa(_ gid: String, branches: Int) async throws {
        var r = TransactionRequest(gid: gid, transType: "xa")
        r.options.waitResult = true
        try await coordinator.prepare(r)
        for i in 1...branches {
            try await coordinator.registerBranch(BranchRegistration(gid: gid, transType: "xa", branchID: "0\(i)", data: ["url": "xa\(i)"], busiPayload: []))
        }
    }

    func msg(_ gid: String, steps: Int, queryPrepared: String = "qp", configure: (inout TransactionRequest) -> Void = { _ in }) -> TransactionRequest {
        var r = TransactionRequest(gid: gid, transType: "msg")
        r.steps = (1...steps).map { TransStep(action: "m\($0)") }
        r.payloads = (1...steps).map { Array("p\($0)".utf8) }
        r.queryPrepared = queryPrepared
        configure(&r)
        return r
    }
}

@Suite("tcc and xa")
struct PhaseTwoTests {
    @Test("tcc: submit confirms from the last registered branch to the first")
    func tccConfirm() async throws {
        let h = Harness()
        try await h.tcc("t1", branches: 2)
        var submit = TransactionRequest(gid: "t1", transType: "tcc")
        submit.options.waitResult = true
        try await h.coordinator.submit(submit)
        #expect(h.caller.trail == ["confirm2/confirm", "confirm1/confirm"])
        #expect(h.caller.calls.map(\.payload) == [Array("d2".utf8), Array("d1".utf8)])
        #expect(try await h.status("t1") == .succeed)
        #expect(try await h.branchStatuses("t1") == "psps")
    }

    @Test("tcc: abort cancels every registered branch, last first; ONGOING answers 425-style")
    func tccAbort() async throws {
        let h = Harness()
        try await h.tcc("t2", branches: 2)
        h.caller.script("cancel1", .ongoing("ONGOING"))
        var abort = TransactionRequest(gid: "t2", transType: "tcc")
        abort.rollbackReason = "try failed"
        await #expect(throws: DTMError.ongoing("ONGOING")) { try await h.coordinator.abort(abort) }
        #expect(try await h.status("t2") == .aborting)
        #expect(try await h.store.transaction(gid: "t2")?.rollbackReason == "try failed")
        try await h.coordinator.abort(abort)  // aborting → aborting re-processes
        #expect(h.caller.trail == ["cancel2/cancel", "cancel1/cancel", "cancel1/cancel"])
        #expect(try await h.status("t2") == .failed)
    }

    @Test("tcc: a prepared tcc times out after TimeoutToFail and is cancelled")
    func tccTimeout() async throws {
        let h = Harness()
        try await h.tcc("t3", branches: 1)
        h.clock.advance(20)
        await h.coordinator.cronOnce()
        #expect(try await h.status("t3") == .prepared, "not timed out yet: claimed, nothing done")
        h.clock.advance(16)
        await h.coordinator.cronOnce()
        let t = try #require(try await h.store.transaction(gid: "t3"))
        #expect(t.status == .failed)
        #expect(t.rollbackReason == "Timeout after 35 seconds")
        #expect(h.caller.trail == ["cancel1/cancel"])
    }

    @Test("tcc: submit without any registered branch succeeds at once")
    func tccEmpty() async throws {
        let h = Harness()
        var r = TransactionRequest(gid: "t4", transType: "tcc")
        r.options.waitResult = true
        try await h.coordinator.submit(r)
        #expect(try await h.status("t4") == .succeed)
    }

    @Test("xa: commit first to last; rollback first to last")
    func xa() async throws {
        let h = Harness()
        try await h.xa("x1", branches: 2)
        var r = TransactionRequest(gid: "x1", transType: "xa")
        r.options.waitResult = true
        try await h.coordinator.submit(r)
        #expect(h.caller.trail == ["xa1/commit", "xa2/commit"])
        try await h.xa("x2", branches: 2)
        r.gid = "x2"
        try await h.coordinator.abort(r)
        #expect(h.caller.trail.suffix(2) == ["xa1/rollback", "xa2/rollback"])
        #expect(try await h.status("x2") == .failed)
    }
}

@Suite("two-phase messages")
struct MsgTests {
    @Test("msg: submit calls the branches in order and succeeds")
    func normal() async throws {
        let h = Harness()
        try await h.coordinator.submit(h.msg("m1", steps: 2) { $0.options.waitResult = true })
        #expect(h.caller.trail == ["m1/action", "m2/action"])
        #expect(try await h.status("m1") == .succeed)
    }

    @Test("msg: FAILURE from a branch is retried, never final")
    func failureRetried() async throws {
        let h = Harness()
        h.caller.script("m2", .failure("no"))
        await #expect(throws: DTMError.self) { try await h.coordinator.submit(h.msg("m2", steps: 2) { $0.options.waitResult = true }) }
        #expect(try await h.status("m2") == .submitted)
        h.clock.advance(25)
        await h.coordinator.cronOnce()
        #expect(try await h.status("m2") == .succeed)
        #expect(h.caller.trail == ["m1/action", "m2/action", "m2/action"])
    }

    @Test("msg: prepared, then check-back ONGOING waits, SUCCESS submits and runs the branches")
    func checkBackSuccess() async throws {
        let h = Harness()
        try await h.coordinator.prepare(h.msg("m3", steps: 1))
        h.caller.script("qp", .ongoing("ONGOING"))
        h.clock.advance(36)
        await h.coordinator.cronOnce()
        #expect(try await h.status("m3") == .prepared)
        h.clock.advance(11)
        await h.coordinator.cronOnce()
        #expect(try await h.status("m3") == .succeed)
        #expect(h.caller.trail == ["qp/msg", "qp/msg", "m1/action"])
        #expect(h.caller.calls[0].branchID == "00")
    }

    @Test("msg: check-back FAILURE fails the msg without calling branches")
    func checkBackFailure() async throws {
        let h = Harness()
        try await h.coordinator.prepare(h.msg("m4", steps: 1))
        h.caller.script("qp", .failure("rolled back"))
        h.clock.advance(36)
        await h.coordinator.cronOnce()
        #expect(try await h.status("m4") == .failed)
        #expect(try await h.branchStatuses("m4") == "p")
    }

    @Test("msg: an empty query_prepared counts as SUCCESS")
    func emptyCheckBack() async throws {
        let h = Harness()
        try await h.coordinator.prepare(h.msg("m5", steps: 1, queryPrepared: ""))
        h.clock.advance(36)
        await h.coordinator.cronOnce()
        #expect(try await h.status("m5") == .succeed)
        #expect(h.caller.trail == ["m1/action"])
    }

    @Test("msg: abort of a prepared msg fails it; prepare again is refused")
    func abort() async throws {
        let h = Harness()
        try await h.coordinator.prepare(h.msg("m6", steps: 1))
        try await h.coordinator.abort(TransactionRequest(gid: "m6", transType: "msg"))
        #expect(try await h.status("m6") == .failed)
        await #expect(throws: DTMError.failure("current status 'failed', cannot prepare.")) { try await h.coordinator.prepare(h.msg("m6", steps: 1)) }
    }

    @Test("msg: delay postpones the branches")
    func delay() async throws {
        let h = Harness()
        try await h.coordinator.submit(h.msg("m7", steps: 1) { $0.customData = #"{"delay":30}"# })
        try await Task.sleep(for: .milliseconds(50))  // the background round
        #expect(h.caller.calls.isEmpty)
        #expect(try await h.store.transaction(gid: "m7")?.nextCronTime == h.clock.now().adding(seconds: 30))
        h.clock.advance(31)
        await h.coordinator.cronOnce()
        #expect(try await h.status("m7") == .succeed)
    }

    @Test("msg: concurrent runs every branch in one round")
    func concurrent() async throws {
        let h = Harness()
        h.caller.script("m1", .error("down"))
        await #expect(throws: DTMError.self) {
            try await h.coordinator.submit(
                h.msg("m8", steps: 3) {
                    $0.options.concurrent = true; $0.options.waitResult = true
                })
        }
        #expect(Set(h.caller.trail) == ["m1/action", "m2/action", "m3/action"])
        #expect(try await h.branchStatuses("m8") == "pss")
    }

    @Test("msg: topic:// steps become one branch per subscriber; unknown topics are refused")
    func topics() async throws {
        let h = Harness()
        try await h.coordinator.subscribe(topic: "t", url: "s1", remark: "")
        try await h.coordinator.subscribe(topic: "t", url: "s2", remark: "r")
        await #expect(throws: DTMError.other("this url exists")) { try await h.coordinator.subscribe(topic: "t", url: "s1", remark: "") }
        var r = h.msg("m9", steps: 1) { $0.options.waitResult = true }
        r.steps = [TransStep(action: "topic://t")]
        try await h.coordinator.submit(r)
        #expect(try await h.store.branches(gid: "m9").map(\.branchID) == ["01-01", "01-02"])
        #expect(h.caller.trail == ["s1/action", "s2/action"])
        r.gid = "m10"
        r.steps = [TransStep(action: "topic://none")]
        await #expect(throws: DTMError.other("topic not found")) { try await h.coordinator.submit(r) }
        try await h.coordinator.unsubscribe(topic: "t", url: "s1")
        await #expect(throws: DTMError.other("no such an url ")) { try await h.coordinator.unsubscribe(topic: "t", url: "s1") }
        try await h.coordinator.unsubscribe(topic: "t", url: "s2")
        await #expect(throws: DTMError.other("this topic is empty")) { try await h.coordinator.unsubscribe(topic: "t", url: "s2") }
        try await h.coordinator.deleteTopic("t")
        await #expect(throws: DTMError.other("storage: NotFound")) { try await h.coordinator.deleteTopic("t") }
        await #expect(throws: DTMError.other("empty topic")) { try await h.coordinator.subscribe(topic: "", url: "x", remark: "") }
    }
}

@Suite("workflow")
struct WorkflowTests {
    func prepare(_ h: Harness, _ gid: String, protocol p: String = "http") async throws -> (GlobalTransaction, [Branch]) {
        var r = TransactionRequest(gid: gid, transType: "workflow")
        r.customData = #"{"data":"eyJhbW91bnQiOjMwfQ==","name":"wf"}"#
        r.queryPrepared = "resume"
        r.transProtocol = p
        return try await h.coordinator.prepareWorkflow(r)
    }

    @Test("workflow: prepareWorkflow returns new, then stored with progresses; submit finishes it")
    func progress() async throws {
        let h = Harness()
        let (t, p) = try await prepare(h, "w1")
        #expect(t.status == .prepared)
        #expect(p.isEmpty)
        try await h.coordinator.registerBranch(
            BranchRegistration(
                gid: "w1", transType: "workflow", branchID: "01", data: ["op": "action", "status": "succeed", "data": "r"], busiPayload: Array("r".utf8)))
        let (again, progresses) = try await prepare(h, "w1")
        #expect(again.gid == "w1")
        #expect(progresses.map(\.status) == [.succeed])
        #expect(progresses.map(\.op) == ["action"])
        var submit = TransactionRequest(gid: "w1", transType: "workflow")
        submit.reqExtra = ["status": "succeed", "result": "cmVz"]
        try await h.coordinator.submit(submit)
        let done = try #require(try await h.store.transaction(gid: "w1"))
        #expect(done.status == .succeed)
        #expect(done.result == "cmVz")
        await #expect(throws: DTMError.storageNotFound("")) { try await h.coordinator.submit(submit) }
    }

    @Test("workflow: the cron loop resumes an unfinished workflow with its decoded input, op = its name")
    func resume() async throws {
        let h = Harness()
        _ = try await prepare(h, "w2")
        h.clock.advance(11)
        await h.coordinator.cronOnce()
        #expect(h.caller.trail == ["resume/wf"])
        #expect(h.caller.calls[0].branchID == "00")
        #expect(h.caller.calls[0].payload == Array(#"{"amount":30}"#.utf8))
        #expect(try await h.status("w2") == .prepared)
    }

    @Test("workflow: over gRPC the input is wrapped as workflow.WorkflowData")
    func grpcResume() async throws {
        let h = Harness()
        _ = try await prepare(h, "w3", protocol: "grpc")
        h.clock.advance(11)
        await h.coordinator.cronOnce()
        #expect(h.caller.calls[0].payload == [0x0A, 13] + Array(#"{"amount":30}"#.utf8))
    }

    @Test("base64 round trip")
    func base64() {
        for s in ["", "a", "ab", "abc", "abcd", "{\"amount\":30}"] {
            #expect(Base64.decode(Base64.encode(Array(s.utf8))) == Array(s.utf8))
        }
        #expect(Base64.decode("eyJhbW91bnQiOjMwfQ==") == Array(#"{"amount":30}"#.utf8))
        #expect(Base64.decode("@@") == nil)
    }
}
