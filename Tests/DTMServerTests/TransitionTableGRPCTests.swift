import DTMCore
import DTMGRPC
import Foundation
import HTTP2
import Testing

/// Spec §2.5's transition table and DTM's gRPC scenarios (spec §16.3: tcc_grpc, xa_grpc, msg_grpc, saga_grpc,
/// workflow_grpc) against the real server's gRPC API and a real gRPC branch service. The final statuses and
/// branch rows are read back from the store through `query`; the order of the branch calls from the branch
/// service's log. `resetNextCronTime` stands in for DTM's test-only `cronTransOnce` (spec §16.1).
@Suite("end to end: transition table and DTM scenarios over gRPC")
struct TransitionTableGRPCTests {
    let S = EndToEndModesTests.status
    let B = EndToEndModesTests.branchStatuses

    func call(_ server: ServerProcess, _ method: String, _ r: TransactionRequest) async -> GRPCCallResult {
        await EndToEndGRPCTests.call(server, method, packed { try ProtoCodec.encodeRequest(r) })
    }

    func register(
        _ server: ServerProcess, _ gid: String, _ type: String, _ id: String, _ data: [String: String], payload: [UInt8] = [0x08, 0x1E]
    ) async -> GRPCCallResult {
        await EndToEndGRPCTests.call(
            server, "RegisterBranch",
            packed { try ProtoCodec.encodeBranchRequest(BranchRegistration(gid: gid, transType: type, branchID: id, data: data, busiPayload: payload)) })
    }

    func tccBranch(_ busi: GRPCBranchService, _ name: String) -> [String: String] {
        ["confirm": busi.url("/busi.Busi/\(name)Confirm"), "cancel": busi.url("/busi.Busi/\(name)Revert")]
    }

    /// Brings the next cron round of `gid` forward, after the round that made the last call has had time to
    /// store its outcome (otherwise its own schedule update could push the reset back out).
    func cronOnce(_ server: ServerProcess, _ gid: String) async throws {
        try await Task.sleep(for: .milliseconds(300))
        let r = try await HTTP.post("\(server.base)/resetNextCronTime", json: ["gid": gid])
        #expect(r.status == 200, "\(r.body)")
    }

    func reason(_ server: ServerProcess, _ gid: String) async throws -> String? {
        (try await HTTP.get("\(server.base)/query?gid=\(gid)").json["transaction"] as? [String: Any])?["rollback_reason"] as? String
    }

    @Test("(new) → submitted: tcc and xa Submit without Prepare; prepared → submitted: saga Prepare then Submit")
    func submitWithoutPrepare() async throws {
        let busi = try await GRPCBranchService.start()
        let server = try ServerProcess()
        try await server.start()
        for type in ["tcc", "xa"] {
            var r = TransactionRequest(gid: "g-np-\(type)", transType: type)
            r.options.waitResult = true
            let result = await call(server, "Submit", r)
            #expect(result.isOK, "\(type): \(result.status)")
            #expect(try await S(server, "g-np-\(type)") == "succeed")
            #expect(try await B(server, "g-np-\(type)") == [])
        }
        var saga = TransactionRequest(gid: "g-prep-saga", transType: "saga")
        saga.steps = [
            TransStep(action: busi.url("/busi.Busi/TransOut"), compensate: busi.url("/busi.Busi/TransOutRevert")),
            TransStep(action: busi.url("/busi.Busi/TransIn"), compensate: busi.url("/busi.Busi/TransInRevert")),
        ]
        saga.payloads = [[1], [2]]
        #expect(await call(server, "Prepare", saga).isOK)
        #expect(try await S(server, "g-prep-saga") == "prepared")
        #expect(try await B(server, "g-prep-saga") == ["prepared", "prepared", "prepared", "prepared"])
        try await Task.sleep(for: .milliseconds(300))
        #expect(busi.trail(gid: "g-prep-saga") == [], "a prepared saga is not processed")
        saga.options.waitResult = true
        #expect(await call(server, "Submit", saga).isOK)
        #expect(try await S(server, "g-prep-saga") == "succeed")
        #expect(busi.trail(gid: "g-prep-saga") == ["TransOut/action", "TransIn/action"])
        #expect(try await B(server, "g-prep-saga") == ["prepared", "succeed", "prepared", "succeed"])
        _ = server.terminate()
        await busi.stop()
    }

    @Test(
        "msg: Abort of a prepared msg fails it; Prepare then Submit; check-back ONGOING then SUCCESS submits (TestMsgGrpcTimeoutSuccess); ONGOING then FAILURE fails (TestMsgGrpcTimeoutFailed)"
    )
    func msgCheckBack() async throws {
        let busi = try await GRPCBranchService.start()
        let server = try ServerProcess()
        try await server.start()
        func msg(_ gid: String) -> TransactionRequest {
            var m = TransactionRequest(gid: gid, transType: "msg")
            m.steps = [TransStep(action: busi.url("/busi.Busi/TransOut")), TransStep(action: busi.url("/busi.Busi/TransIn"))]
            m.payloads = [[1], [2]]
            m.queryPrepared = busi.url("/busi.Busi/QueryPrepared")
            m.options.timeoutToFail = 1
            m.options.retryInterval = 60  // no round unless brought forward
            return m
        }
        // prepared → failed by Abort.
        #expect(await call(server, "Prepare", msg("gm-abort")).isOK)
        #expect(await call(server, "Abort", msg("gm-abort")).isOK)
        #expect(try await S(server, "gm-abort") == "failed")
        #expect(try await B(server, "gm-abort") == ["prepared", "prepared"])

        // prepared → submitted by Submit (no check-back) → succeed.
        #expect(await call(server, "Prepare", msg("gm-sub")).isOK)
        #expect(try await S(server, "gm-sub") == "prepared")
        var submit = msg("gm-sub")
        submit.options.waitResult = true
        #expect(await call(server, "Submit", submit).isOK)
        #expect(try await S(server, "gm-sub") == "succeed")
        #expect(busi.trail(gid: "gm-sub") == ["TransOut/action", "TransIn/action"])

        // prepared → (check-back ONGOING) prepared → (SUCCESS) submitted → (TransOut ONGOING) stays → succeed.
        busi.script("/busi.Busi/QueryPrepared", GRPCStatus(.failedPrecondition, "ONGOING"), .init(.ok))
        busi.script("/busi.Busi/TransOut", GRPCStatus(.failedPrecondition, "ONGOING"))
        #expect(await call(server, "Prepare", msg("gm-ok")).isOK)
        try await Task.sleep(for: .milliseconds(1100))  // past timeout_to_fail
        try await cronOnce(server, "gm-ok")
        #expect(await EndToEndGRPCTests.waitFor { busi.calls(gid: "gm-ok").count == 1 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "gm-ok") == "prepared")
        try await cronOnce(server, "gm-ok")
        #expect(await EndToEndGRPCTests.waitFor { busi.calls(gid: "gm-ok").count == 3 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "gm-ok") == "submitted")
        #expect(try await B(server, "gm-ok") == ["prepared", "prepared"])
        try await cronOnce(server, "gm-ok")
        _ = try await EndToEndSagaTests.waitForStatus(server, "gm-ok", "succeed", timeout: 10)
        #expect(busi.trail(gid: "gm-ok") == ["QueryPrepared/msg", "QueryPrepared/msg", "TransOut/action", "TransOut/action", "TransIn/action"])
        #expect(busi.calls(gid: "gm-ok").prefix(2).allSatisfy { $0.metadata["dtm-branch_id"] == "00" })
        #expect(try await B(server, "gm-ok") == ["succeed", "succeed"])

        // prepared → (ONGOING) prepared → (ABORTED = FAILURE) failed, no branch called.
        busi.script("/busi.Busi/QueryPrepared", GRPCStatus(.failedPrecondition, "ONGOING"), GRPCStatus(.aborted, "FAILURE"))
        #expect(await call(server, "Prepare", msg("gm-fail")).isOK)
        try await Task.sleep(for: .milliseconds(1100))
        try await cronOnce(server, "gm-fail")
        #expect(await EndToEndGRPCTests.waitFor { busi.calls(gid: "gm-fail").count == 1 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "gm-fail") == "prepared")
        try await cronOnce(server, "gm-fail")
        _ = try await EndToEndSagaTests.waitForStatus(server, "gm-fail", "failed", timeout: 10)
        #expect(busi.trail(gid: "gm-fail") == ["QueryPrepared/msg", "QueryPrepared/msg"])
        #expect(try await B(server, "gm-fail") == ["prepared", "prepared"])
        _ = server.terminate()
        await busi.stop()
    }

    @Test(
        "xa: Abort without branches (TestXaGrpcLocalError, TestTccGrpcCoverPanic); Abort rolls back first to last; a failing rollback leaves it aborting, Abort again finishes it; timeout rolls back (TestXaGrpcRollback, TestXaTimeout)"
    )
    func xaAbortAndTimeout() async throws {
        let busi = try await GRPCBranchService.start()
        let server = try ServerProcess()
        try await server.start()
        // prepared → aborting (Abort), rollback of 01 errors → stays aborting; aborting → aborting (Abort again) → failed.
        busi.script("/busi.Busi/TransOutXa", GRPCStatus(.unavailable, "db down"))
        #expect(await call(server, "Prepare", TransactionRequest(gid: "gx-ab", transType: "xa")).isOK)
        for (id, name) in [("01", "TransOutXa"), ("02", "TransInXa")] {
            #expect(await register(server, "gx-ab", "xa", id, ["url": busi.url("/busi.Busi/\(name)")]).isOK)
        }
        #expect(await call(server, "Abort", TransactionRequest(gid: "gx-ab", transType: "xa")).isOK)
        #expect(await EndToEndGRPCTests.waitFor { busi.calls(gid: "gx-ab").count == 1 })
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await S(server, "gx-ab") == "aborting")
        #expect(try await B(server, "gx-ab") == ["prepared", "prepared", "prepared", "prepared"])
        // (wait_result of an abort comes from the stored options, spec §8.8, so this one returns at once)
        #expect(await call(server, "Abort", TransactionRequest(gid: "gx-ab", transType: "xa")).isOK)
        _ = try await EndToEndSagaTests.waitForStatus(server, "gx-ab", "failed", timeout: 10)
        #expect(busi.trail(gid: "gx-ab") == ["TransOutXa/rollback", "TransOutXa/rollback", "TransInXa/rollback"])
        #expect(try await B(server, "gx-ab") == ["succeed", "prepared", "succeed", "prepared"])

        // TestXaGrpcLocalError / TestTccGrpcCoverPanic: the client aborts before registering anything → failed.
        for type in ["xa", "tcc"] {
            #expect(await call(server, "Prepare", TransactionRequest(gid: "g-le-\(type)", transType: type)).isOK)
            var abort = TransactionRequest(gid: "g-le-\(type)", transType: type)
            abort.rollbackReason = "user panic"
            #expect(await call(server, "Abort", abort).isOK)
            _ = try await EndToEndSagaTests.waitForStatus(server, "g-le-\(type)", "failed", timeout: 10)
            #expect(try await reason(server, "g-le-\(type)") == "user panic")
            #expect(try await B(server, "g-le-\(type)") == [])
        }

        // TestXaGrpcRollback: only branch 01 registered, the client aborts → failed, [s,p].
        #expect(await call(server, "Prepare", TransactionRequest(gid: "gx-rb", transType: "xa")).isOK)
        #expect(await register(server, "gx-rb", "xa", "01", ["url": busi.url("/busi.Busi/TransOutXa")]).isOK)
        #expect(await call(server, "Abort", TransactionRequest(gid: "gx-rb", transType: "xa")).isOK)
        _ = try await EndToEndSagaTests.waitForStatus(server, "gx-rb", "failed", timeout: 10)
        #expect(busi.trail(gid: "gx-rb") == ["TransOutXa/rollback"])
        #expect(try await B(server, "gx-rb") == ["succeed", "prepared"])

        // prepared → aborting by timeout → failed; registerBranch and Submit afterwards are refused.
        var timed = TransactionRequest(gid: "gx-to", transType: "xa")
        timed.options.timeoutToFail = 1
        #expect(await call(server, "Prepare", timed).isOK)
        #expect(await register(server, "gx-to", "xa", "01", ["url": busi.url("/busi.Busi/TransOutXa")]).isOK)
        _ = try await EndToEndSagaTests.waitForStatus(server, "gx-to", "failed", timeout: 15)
        #expect(try await reason(server, "gx-to") == "Timeout after 1 seconds")
        #expect(busi.trail(gid: "gx-to") == ["TransOutXa/rollback"])
        #expect(try await B(server, "gx-to") == ["succeed", "prepared"])
        #expect(await register(server, "gx-to", "xa", "02", ["url": busi.url("/busi.Busi/TransInXa")]).status.code == .aborted)
        #expect(await call(server, "Submit", TransactionRequest(gid: "gx-to", transType: "xa")).status.code == .aborted)
        _ = server.terminate()
        await busi.stop()
    }

    @Test(
        "tcc: cancel ONGOING leaves it aborting, cron finishes it (TestTccGrpcRollback); Abort again while aborting; nested 0201 (TestTccGrpcNested); headers and empty confirm (TestTccGrpcHeaders); timeout (TestTccTimeout)"
    )
    func tccScenarios() async throws {
        let busi = try await GRPCBranchService.start()
        let server = try ServerProcess()
        try await server.start()
        // TestTccGrpcRollback
        busi.script("/busi.Busi/TransOutRevert", GRPCStatus(.failedPrecondition, "ONGOING"))
        #expect(await call(server, "Prepare", TransactionRequest(gid: "gt-rb", transType: "tcc")).isOK)
        #expect(await register(server, "gt-rb", "tcc", "01", tccBranch(busi, "TransOut")).isOK)
        #expect(await register(server, "gt-rb", "tcc", "02", tccBranch(busi, "TransIn")).isOK)
        var abort = TransactionRequest(gid: "gt-rb", transType: "tcc")
        abort.rollbackReason = "rpc error: code = Aborted desc = reason:"
        #expect(await call(server, "Abort", abort).isOK)
        #expect(await EndToEndGRPCTests.waitFor { busi.calls(gid: "gt-rb").count == 2 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "gt-rb") == "aborting")
        #expect(try await B(server, "gt-rb") == ["prepared", "prepared", "succeed", "prepared"])
        try await cronOnce(server, "gt-rb")
        _ = try await EndToEndSagaTests.waitForStatus(server, "gt-rb", "failed", timeout: 10)
        #expect(busi.trail(gid: "gt-rb") == ["TransInRevert/cancel", "TransOutRevert/cancel", "TransOutRevert/cancel"])
        #expect(try await B(server, "gt-rb") == ["succeed", "prepared", "succeed", "prepared"])
        #expect(try await reason(server, "gt-rb") == "rpc error: code = Aborted desc = reason:")

        // aborting → aborting: a tcc Abort while aborting re-runs the cancel that failed, then → failed.
        busi.script("/busi.Busi/TransOutRevert", GRPCStatus(.unavailable, "down"))
        #expect(await call(server, "Prepare", TransactionRequest(gid: "gt-again", transType: "tcc")).isOK)
        #expect(await register(server, "gt-again", "tcc", "01", tccBranch(busi, "TransOut")).isOK)
        #expect(await call(server, "Abort", TransactionRequest(gid: "gt-again", transType: "tcc")).isOK)
        #expect(await EndToEndGRPCTests.waitFor { busi.calls(gid: "gt-again").count == 1 })
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await S(server, "gt-again") == "aborting")
        #expect(await call(server, "Abort", TransactionRequest(gid: "gt-again", transType: "tcc")).isOK)
        _ = try await EndToEndSagaTests.waitForStatus(server, "gt-again", "failed", timeout: 10)
        #expect(busi.trail(gid: "gt-again") == ["TransOutRevert/cancel", "TransOutRevert/cancel"])
        #expect(try await B(server, "gt-again") == ["succeed", "prepared"])

        // TestTccGrpcNested: the try of 02 registers its nested branch 0201; confirms run last to first.
        #expect(await call(server, "Prepare", TransactionRequest(gid: "gt-nest", transType: "tcc")).isOK)
        #expect(await register(server, "gt-nest", "tcc", "01", tccBranch(busi, "TransOut")).isOK)
        #expect(await register(server, "gt-nest", "tcc", "02", tccBranch(busi, "TransIn")).isOK)
        #expect(await register(server, "gt-nest", "tcc", "0201", tccBranch(busi, "TransInNested")).isOK)
        var submit = TransactionRequest(gid: "gt-nest", transType: "tcc")
        submit.options.waitResult = true
        #expect(await call(server, "Submit", submit).isOK)
        #expect(try await S(server, "gt-nest") == "succeed")
        #expect(busi.trail(gid: "gt-nest") == ["TransInNestedConfirm/confirm", "TransInConfirm/confirm", "TransOutConfirm/confirm"])
        #expect(busi.calls(gid: "gt-nest").map { $0.metadata["dtm-branch_id"] ?? "" } == ["0201", "02", "01"])
        #expect(try await B(server, "gt-nest") == ["prepared", "succeed", "prepared", "succeed", "prepared", "succeed"])

        // TestTccGrpcHeaders: branch_headers + wait_result; 01 with empty confirm/cancel counts as done without a call.
        var headers = TransactionRequest(gid: "gt-hdr", transType: "tcc")
        headers.options.branchHeaders = ["test_header": "test"]
        headers.options.waitResult = true
        #expect(await call(server, "Prepare", headers).isOK)
        #expect(await register(server, "gt-hdr", "tcc", "01", ["confirm": "", "cancel": ""]).isOK)
        #expect(await register(server, "gt-hdr", "tcc", "02", tccBranch(busi, "TransIn")).isOK)
        #expect(await call(server, "Submit", headers).isOK)
        #expect(try await S(server, "gt-hdr") == "succeed")
        #expect(busi.trail(gid: "gt-hdr") == ["TransInConfirm/confirm"])
        #expect(busi.calls(gid: "gt-hdr").first?.metadata["test_header"] == "test")
        #expect(try await B(server, "gt-hdr") == ["prepared", "succeed", "prepared", "succeed"])

        // TestTccTimeout: prepared → aborting by timeout → cancel 01 → failed; the late register and abort are refused.
        var timed = TransactionRequest(gid: "gt-to", transType: "tcc")
        timed.options.timeoutToFail = 1
        #expect(await call(server, "Prepare", timed).isOK)
        #expect(await register(server, "gt-to", "tcc", "01", tccBranch(busi, "TransOut")).isOK)
        _ = try await EndToEndSagaTests.waitForStatus(server, "gt-to", "failed", timeout: 15)
        #expect(try await reason(server, "gt-to") == "Timeout after 1 seconds")
        #expect(busi.trail(gid: "gt-to") == ["TransOutRevert/cancel"])
        #expect(try await B(server, "gt-to") == ["succeed", "prepared"])
        let late = await register(server, "gt-to", "tcc", "02", tccBranch(busi, "TransIn"))
        #expect(late.status.code == .aborted)
        #expect(late.status.message == "no trans with gid: gt-to status: prepared found FAILURE")
        #expect(await call(server, "Abort", timed).status.code == .aborted)
        _ = server.terminate()
        await busi.stop()
    }

    @Test(
        "saga: timeout_to_fail aborts and compensates what may have run; a compensation ONGOING leaves it aborting (TestSagaGrpcRollback); committed ONGOING; empty URL; concurrent with orders"
    )
    func sagaScenarios() async throws {
        let busi = try await GRPCBranchService.start()
        let server = try ServerProcess()
        try await server.start()
        // Its own branch service for the timeout case, whose TransOut answers ONGOING to every call.
        let slow = try await GRPCBranchService.start()
        func saga(_ gid: String, second: String = "TransIn", on service: GRPCBranchService? = nil) -> TransactionRequest {
            let svc = service ?? busi
            var r = TransactionRequest(gid: gid, transType: "saga")
            r.steps = [
                TransStep(action: svc.url("/busi.Busi/TransOut"), compensate: svc.url("/busi.Busi/TransOutRevert")),
                TransStep(action: second.isEmpty ? "" : svc.url("/busi.Busi/\(second)"), compensate: svc.url("/busi.Busi/TransInRevert")),
            ]
            r.payloads = [[1], [2]]
            return r
        }
        // submitted → aborting by timeout_to_fail (TestSagaOptionsTimeout over gRPC): TransOut stays ONGOING.
        slow.script(
            "/busi.Busi/TransOut", GRPCStatus(.failedPrecondition, "ONGOING"), GRPCStatus(.failedPrecondition, "ONGOING"),
            GRPCStatus(.failedPrecondition, "ONGOING"), GRPCStatus(.failedPrecondition, "ONGOING"), GRPCStatus(.failedPrecondition, "ONGOING"),
            GRPCStatus(.failedPrecondition, "ONGOING"), GRPCStatus(.failedPrecondition, "ONGOING"), GRPCStatus(.failedPrecondition, "ONGOING"))
        var timed = saga("gs-to", on: slow)
        timed.options.timeoutToFail = 1
        #expect(await call(server, "Submit", timed).isOK)
        _ = try await EndToEndSagaTests.waitForStatus(server, "gs-to", "failed", timeout: 15)
        #expect(try await reason(server, "gs-to") == "Timeout after 1 seconds")
        let trail = slow.trail(gid: "gs-to")
        #expect(trail.last == "TransOutRevert/compensate")
        #expect(trail.dropLast().allSatisfy { $0 == "TransOut/action" } && trail.count >= 2, "\(trail)")
        #expect(try await B(server, "gs-to") == ["succeed", "prepared", "prepared", "prepared"])
        await slow.stop()

        // TestSagaGrpcRollback: TransIn ABORTED, TransOutRevert ONGOING once → aborting; cron → failed [s,s,s,f].
        busi.script("/busi.Busi/TransIn", GRPCStatus(.aborted, "reason:Insufficient balance"))
        busi.script("/busi.Busi/TransOutRevert", GRPCStatus(.failedPrecondition, "ONGOING"))
        #expect(await call(server, "Submit", saga("gs-rb")).isOK)
        #expect(await EndToEndGRPCTests.waitFor { busi.calls(gid: "gs-rb").count == 4 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "gs-rb") == "aborting")
        try await cronOnce(server, "gs-rb")
        _ = try await EndToEndSagaTests.waitForStatus(server, "gs-rb", "failed", timeout: 10)
        #expect(
            busi.trail(gid: "gs-rb") == [
                "TransOut/action", "TransIn/action", "TransInRevert/compensate", "TransOutRevert/compensate", "TransOutRevert/compensate",
            ])
        #expect(try await B(server, "gs-rb") == ["succeed", "succeed", "succeed", "failed"])
        #expect(try await reason(server, "gs-rb")?.contains("Insufficient balance") == true)

        // TestSagaGrpcCommittedOngoing: TransOut ONGOING → submitted [p,p,p,p]; cron → succeed [p,s,p,s].
        busi.script("/busi.Busi/TransOut", GRPCStatus(.failedPrecondition, "ONGOING"))
        #expect(await call(server, "Submit", saga("gs-on")).isOK)
        #expect(await EndToEndGRPCTests.waitFor { busi.calls(gid: "gs-on").count == 1 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "gs-on") == "submitted")
        #expect(try await B(server, "gs-on") == ["prepared", "prepared", "prepared", "prepared"])
        try await cronOnce(server, "gs-on")
        _ = try await EndToEndSagaTests.waitForStatus(server, "gs-on", "succeed", timeout: 10)
        #expect(busi.trail(gid: "gs-on") == ["TransOut/action", "TransOut/action", "TransIn/action"])
        #expect(try await B(server, "gs-on") == ["prepared", "succeed", "prepared", "succeed"])

        // TestSagaGrpcEmptyUrl: the second action is "" → done without a call.
        var empty = saga("gs-empty", second: "")
        empty.options.waitResult = true
        #expect(await call(server, "Submit", empty).isOK)
        #expect(busi.trail(gid: "gs-empty") == ["TransOut/action"])
        #expect(try await B(server, "gs-empty") == ["prepared", "succeed", "prepared", "succeed"])

        // TestSagaGrpcCurrentOrder: concurrent with orders {1:[0]} (custom data, the only way over gRPC).
        var ordered = saga("gs-con")
        ordered.customData = #"{"concurrent":true,"orders":{"1":[0]}}"#
        ordered.options.waitResult = true
        #expect(await call(server, "Submit", ordered).isOK)
        #expect(busi.trail(gid: "gs-con") == ["TransOut/action", "TransIn/action"])
        #expect(try await B(server, "gs-con") == ["prepared", "succeed", "prepared", "succeed"])
        _ = server.terminate()
        await busi.stop()
    }

    @Test("workflow: Submit with req_extra status failed fails a prepared workflow; succeed with result (prepared → failed / succeed)")
    func workflowSubmit() async throws {
        let busi = try await GRPCBranchService.start()
        let server = try ServerProcess()
        try await server.start()
        for (gid, status) in [("gw-f", "failed"), ("gw-s", "succeed")] {
            var wf = TransactionRequest(gid: gid, transType: "workflow")
            wf.customData = #"{"data":"","name":"wf"}"#
            wf.queryPrepared = busi.url("/workflow.Workflow/Execute")
            #expect(await call(server, "PrepareWorkflow", wf).isOK)
            #expect(await register(server, gid, "workflow", "01", ["op": "action", "status": status], payload: Array("step".utf8)).isOK)
            var submit = TransactionRequest(gid: gid, transType: "workflow")
            submit.reqExtra = ["status": status, "rollback_reason": status == "failed" ? "step 01 failed" : "", "result": "cmVz"]
            #expect(await call(server, "Submit", submit).isOK)
            #expect(try await S(server, gid) == status)
            #expect(try await B(server, gid) == [status])
        }
        #expect(try await reason(server, "gw-f") == "step 01 failed")
        let again = await call(server, "PrepareWorkflow", TransactionRequest(gid: "gw-f", transType: "workflow"))
        #expect(again.isOK)
        #expect(busi.calls(gid: "gw-f").isEmpty && busi.calls(gid: "gw-s").isEmpty, "a finished workflow is never resumed")
        _ = server.terminate()
        await busi.stop()
    }
}
