import Foundation
import Testing

/// The rows of spec §2.5 that the other end-to-end tests do not reach, over JSON/HTTP.
@Suite("end to end: transition table")
struct TransitionTableTests {
    let S = EndToEndModesTests.status

    @Test("prepared → failed by msg abort, workflow submit failed and forceStop; aborting → aborting by tcc abort again, then failed")
    func toFailed() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        _ = try await HTTP.post(
            "\(server.base)/prepare", json: ["gid": "ab-msg", "trans_type": "msg", "steps": [["action": "\(busi.base)/TransIn"]], "payloads": ["{}"]])
        #expect(try await HTTP.post("\(server.base)/abort", json: ["gid": "ab-msg", "trans_type": "msg"]).status == 200)
        #expect(try await S(server, "ab-msg") == "failed")

        _ = try await HTTP.post("\(server.base)/prepareWorkflow", json: ["gid": "wf-f", "trans_type": "workflow", "custom_data": #"{"name":"w"}"#])
        #expect(
            try await HTTP.post(
                "\(server.base)/submit",
                json: ["gid": "wf-f", "trans_type": "workflow", "req_extra": ["status": "failed", "rollback_reason": "step 2 failed"]]
            ).status == 200)
        #expect(try await S(server, "wf-f") == "failed")

        _ = try await HTTP.post("\(server.base)/prepare", json: ["gid": "fs-p", "trans_type": "tcc"])
        #expect(try await HTTP.post("\(server.base)/forceStop", json: ["gid": "fs-p"]).status == 200)
        #expect(try await S(server, "fs-p") == "failed")

        busi.script("TransOutRevert", .error)
        _ = try await HTTP.post("\(server.base)/prepare", json: ["gid": "fs-a", "trans_type": "tcc"])
        _ = try await HTTP.post(
            "\(server.base)/registerBranch",
            json: ["gid": "fs-a", "trans_type": "tcc", "branch_id": "01", "confirm": "\(busi.base)/TransOutConfirm", "cancel": "\(busi.base)/TransOutRevert"])
        _ = try await HTTP.post("\(server.base)/abort", json: ["gid": "fs-a", "trans_type": "tcc"])
        #expect(await busi.waitFor { _ in busi.calls(gid: "fs-a").count == 1 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "fs-a") == "aborting")
        // aborting → aborting: abort again re-processes the cancels.
        #expect(try await HTTP.post("\(server.base)/abort", json: ["gid": "fs-a", "trans_type": "tcc"]).status == 200)
        #expect(await busi.waitFor { _ in busi.calls(gid: "fs-a").count == 2 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "fs-a") == "failed")
        _ = server.terminate()
        await busi.stop()
    }

    @Test("timeouts: a saga past timeout_to_fail and a prepared tcc past its timeout are rolled back")
    func timeouts() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        busi.script("TransIn", .ongoing, .ongoing, .ongoing, .ongoing)
        var saga = EndToEndSagaTests.quickStart("to-saga", busi: busi)
        saga["timeout_to_fail"] = 1
        _ = try await HTTP.post("\(server.base)/submit", json: saga)
        let q = try await EndToEndSagaTests.waitForStatus(server, "to-saga", "failed", timeout: 15)
        #expect((q["transaction"] as? [String: Any])?["rollback_reason"] as? String == "Timeout after 1 seconds")
        #expect(busi.trail(gid: "to-saga").suffix(2) == ["TransInRevert/compensate", "TransOutRevert/compensate"])

        _ = try await HTTP.post("\(server.base)/prepare", json: ["gid": "to-tcc", "trans_type": "tcc", "timeout_to_fail": 1])
        _ = try await HTTP.post(
            "\(server.base)/registerBranch",
            json: ["gid": "to-tcc", "trans_type": "tcc", "branch_id": "01", "confirm": "\(busi.base)/TransOutConfirm", "cancel": "\(busi.base)/TransOutRevert"])
        _ = try await EndToEndSagaTests.waitForStatus(server, "to-tcc", "failed", timeout: 15)
        #expect(busi.trail(gid: "to-tcc") == ["TransOutRevert/cancel"])
        _ = server.terminate()
        await busi.stop()
    }

    @Test("submitted → aborting by retry_limit")
    func retryLimit() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        busi.script("TransIn", .error, .error)
        var saga = EndToEndSagaTests.quickStart("rl-1", busi: busi, waitResult: true)
        saga["retry_limit"] = 1
        let r = try await HTTP.post("\(server.base)/submit", json: saga)
        #expect(r.status == 409)
        #expect(r.json["message"] as? String == "RetryCount is greater than RetryLimit, RetryLimit: 1 FAILURE")
        #expect(busi.trail(gid: "rl-1") == ["TransOut/action", "TransIn/action", "TransIn/action", "TransInRevert/compensate", "TransOutRevert/compensate"])
        _ = server.terminate()
        await busi.stop()
    }
}
