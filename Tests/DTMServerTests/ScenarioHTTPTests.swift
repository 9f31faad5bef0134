import Foundation
import Testing

/// Spec §2.5 rows and DTM's own scenarios (spec §16.3) that the other HTTP end-to-end tests do not reach: the
/// real server over JSON/HTTP, a real HTTP branch service; final statuses and branch rows read back with
/// `query`, call order from the branch service's log. `resetNextCronTime` stands in for DTM's test-only
/// `cronTransOnce` (spec §16.1).
@Suite("end to end: DTM scenarios over JSON/HTTP")
struct ScenarioHTTPTests {
    let S = EndToEndModesTests.status
    let B = EndToEndModesTests.branchStatuses

    /// Brings the next cron round of `gid` forward once the round that made the last call has stored its outcome.
    func cronOnce(_ server: ServerProcess, _ gid: String) async throws {
        try await Task.sleep(for: .milliseconds(300))
        let r = try await HTTP.post("\(server.base)/resetNextCronTime", json: ["gid": gid])
        #expect(r.status == 200, "\(r.body)")
    }

    func transaction(_ server: ServerProcess, _ gid: String) async throws -> [String: Any] {
        try await HTTP.get("\(server.base)/query?gid=\(gid)").json["transaction"] as? [String: Any] ?? [:]
    }

    func post(_ server: ServerProcess, _ api: String, _ json: [String: Any]) async throws -> HTTP.Response {
        try await HTTP.post("\(server.base)/\(api)", json: json)
    }

    func registerTCC(_ server: ServerProcess, _ busi: BranchService, _ gid: String, _ id: String, _ name: String) async throws {
        let r = try await post(
            server, "registerBranch",
            [
                "gid": gid, "trans_type": "tcc", "branch_id": id, "data": #"{"amount":30}"#,
                "confirm": "\(busi.base)/\(name)Confirm", "cancel": "\(busi.base)/\(name)Revert",
            ])
        #expect(r.status == 200, "\(r.body)")
    }

    @Test("(new) → submitted for tcc and xa; prepared → submitted for a saga; forceStop of an aborting tcc runs no further cancel")
    func transitions() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        for type in ["tcc", "xa"] {
            let r = try await post(server, "submit", ["gid": "np-\(type)", "trans_type": type, "wait_result": true])
            #expect(r.status == 200, "\(type): \(r.body)")
            #expect(try await S(server, "np-\(type)") == "succeed")
        }
        #expect(try await post(server, "prepare", EndToEndSagaTests.quickStart("prep-saga", busi: busi)).status == 200)
        #expect(try await S(server, "prep-saga") == "prepared")
        try await Task.sleep(for: .milliseconds(300))
        #expect(busi.calls(gid: "prep-saga").isEmpty, "a prepared saga is not processed")
        #expect(try await post(server, "submit", EndToEndSagaTests.quickStart("prep-saga", busi: busi, waitResult: true)).status == 200)
        #expect(busi.trail(gid: "prep-saga") == ["TransOut/action", "TransIn/action"])
        #expect(try await B(server, "prep-saga") == ["prepared", "succeed", "prepared", "succeed"])

        // aborting → failed by forceStop: the cancel that errored is not called again, even by the cron loop.
        busi.script("TransOutRevert", .error)
        #expect(try await post(server, "prepare", ["gid": "fs-abort", "trans_type": "tcc", "retry_interval": 1]).status == 200)
        try await registerTCC(server, busi, "fs-abort", "01", "TransOut")
        #expect(try await post(server, "abort", ["gid": "fs-abort", "trans_type": "tcc"]).status == 200)
        #expect(await busi.waitFor { _ in busi.calls(gid: "fs-abort").count == 1 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "fs-abort") == "aborting")
        #expect(try await post(server, "forceStop", ["gid": "fs-abort"]).status == 200)
        #expect(try await S(server, "fs-abort") == "failed")
        try await Task.sleep(for: .milliseconds(3500))  // past the backed-off retry (2 s) plus a cron pass
        #expect(busi.trail(gid: "fs-abort") == ["TransOutRevert/cancel"])
        #expect(try await B(server, "fs-abort") == ["prepared", "prepared"])
        _ = server.terminate()
        await busi.stop()
    }

    @Test(
        "xa: abort rolls back first to last; a failing rollback stays aborting until abort again (TestXaRollback, TestXaCoverDBError); timeout (TestXaTimeout); commit ONGOING then cron (TestXaNotTimeout)"
    )
    func xa() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        func prepareXA(_ gid: String, _ names: [String], extra: [String: Any] = [:]) async throws {
            #expect(try await post(server, "prepare", ["gid": gid, "trans_type": "xa"].merging(extra) { a, _ in a }).status == 200)
            for (i, name) in names.enumerated() {
                let r = try await post(
                    server, "registerBranch", ["gid": gid, "trans_type": "xa", "branch_id": String(format: "%02d", i + 1), "url": "\(busi.base)/\(name)"])
                #expect(r.status == 200, "\(r.body)")
            }
        }
        busi.script("TransOutXa", .error)
        try await prepareXA("xa-ab", ["TransOutXa", "TransInXa"])
        #expect(try await post(server, "abort", ["gid": "xa-ab", "trans_type": "xa"]).status == 200)
        #expect(await busi.waitFor { _ in busi.calls(gid: "xa-ab").count == 1 })
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await S(server, "xa-ab") == "aborting")
        #expect(try await post(server, "abort", ["gid": "xa-ab", "trans_type": "xa"]).status == 200)
        _ = try await EndToEndSagaTests.waitForStatus(server, "xa-ab", "failed", timeout: 10)
        #expect(busi.trail(gid: "xa-ab") == ["TransOutXa/rollback", "TransOutXa/rollback", "TransInXa/rollback"])
        #expect(busi.calls(gid: "xa-ab").allSatisfy { $0.method == "POST" })
        #expect(try await B(server, "xa-ab") == ["succeed", "prepared", "succeed", "prepared"])

        // TestXaTimeout: a prepared xa past its timeout is rolled back; the client's submit is refused.
        try await prepareXA("xa-to", ["TransOutXa"], extra: ["timeout_to_fail": 1])
        _ = try await EndToEndSagaTests.waitForStatus(server, "xa-to", "failed", timeout: 15)
        #expect(try await transaction(server, "xa-to")["rollback_reason"] as? String == "Timeout after 1 seconds")
        #expect(busi.trail(gid: "xa-to") == ["TransOutXa/rollback"])
        #expect(try await B(server, "xa-to") == ["succeed", "prepared"])
        #expect(try await post(server, "submit", ["gid": "xa-to", "trans_type": "xa"]).status == 409)

        // TestXaNotTimeout: commit answers ONGOING → stays submitted; the next cron round commits → [p,s].
        busi.script("TransOutXa", .ongoing)
        try await prepareXA("xa-on", ["TransOutXa"])
        #expect(try await post(server, "submit", ["gid": "xa-on", "trans_type": "xa"]).status == 200)
        #expect(await busi.waitFor { _ in busi.calls(gid: "xa-on").count == 1 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "xa-on") == "submitted")
        #expect(try await B(server, "xa-on") == ["prepared", "prepared"])
        try await cronOnce(server, "xa-on")
        _ = try await EndToEndSagaTests.waitForStatus(server, "xa-on", "succeed", timeout: 10)
        #expect(busi.trail(gid: "xa-on") == ["TransOutXa/commit", "TransOutXa/commit"])
        #expect(try await B(server, "xa-on") == ["prepared", "succeed"])
        _ = server.terminate()
        await busi.stop()
    }

    @Test(
        "tcc: cancel ONGOING stays aborting, cron finishes (TestTccRollback); nested 0201 (TestTccNested); headers on confirm, empty confirm (TestTccHeaders); wait_result confirm ONGOING → 425"
    )
    func tcc() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        busi.script("TransOutRevert", .ongoing)
        #expect(try await post(server, "prepare", ["gid": "tcc-rb", "trans_type": "tcc"]).status == 200)
        try await registerTCC(server, busi, "tcc-rb", "01", "TransOut")
        try await registerTCC(server, busi, "tcc-rb", "02", "TransIn")
        #expect(
            try await post(server, "abort", ["gid": "tcc-rb", "trans_type": "tcc", "rollback_reason": "reason:Insufficient balance. FAILURE"]).status == 200)
        #expect(await busi.waitFor { _ in busi.calls(gid: "tcc-rb").count == 2 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "tcc-rb") == "aborting")
        try await cronOnce(server, "tcc-rb")
        _ = try await EndToEndSagaTests.waitForStatus(server, "tcc-rb", "failed", timeout: 10)
        #expect(busi.trail(gid: "tcc-rb") == ["TransInRevert/cancel", "TransOutRevert/cancel", "TransOutRevert/cancel"])
        #expect(try await B(server, "tcc-rb") == ["succeed", "prepared", "succeed", "prepared"])
        #expect((try await transaction(server, "tcc-rb")["rollback_reason"] as? String)?.contains("FAILURE") == true)

        #expect(try await post(server, "prepare", ["gid": "tcc-nest", "trans_type": "tcc"]).status == 200)
        try await registerTCC(server, busi, "tcc-nest", "01", "TransOut")
        try await registerTCC(server, busi, "tcc-nest", "02", "TransIn")
        try await registerTCC(server, busi, "tcc-nest", "0201", "TransInNested")
        #expect(try await post(server, "submit", ["gid": "tcc-nest", "trans_type": "tcc", "wait_result": true]).status == 200)
        #expect(busi.trail(gid: "tcc-nest") == ["TransInNestedConfirm/confirm", "TransInConfirm/confirm", "TransOutConfirm/confirm"])
        #expect(busi.calls(gid: "tcc-nest").map { $0.query["branch_id"] ?? "" } == ["0201", "02", "01"])
        #expect(try await B(server, "tcc-nest") == ["prepared", "succeed", "prepared", "succeed", "prepared", "succeed"])

        #expect(try await post(server, "prepare", ["gid": "tcc-hdr", "trans_type": "tcc", "branch_headers": ["test_header": "test"]]).status == 200)
        #expect(
            try await post(server, "registerBranch", ["gid": "tcc-hdr", "trans_type": "tcc", "branch_id": "01", "confirm": "", "cancel": ""]).status == 200)
        try await registerTCC(server, busi, "tcc-hdr", "02", "TransIn")
        #expect(
            try await post(server, "submit", ["gid": "tcc-hdr", "trans_type": "tcc", "wait_result": true, "branch_headers": ["test_header": "test"]]).status
                == 200)
        #expect(busi.trail(gid: "tcc-hdr") == ["TransInConfirm/confirm"])
        #expect(busi.calls(gid: "tcc-hdr").first?.headers["test_header"] == "test")
        #expect(try await B(server, "tcc-hdr") == ["prepared", "succeed", "prepared", "succeed"])

        // wait_result with a confirm that answers ONGOING: 425, still submitted; the cron loop finishes it.
        busi.script("TransInConfirm", .ongoing)
        #expect(try await post(server, "prepare", ["gid": "tcc-wait", "trans_type": "tcc"]).status == 200)
        try await registerTCC(server, busi, "tcc-wait", "01", "TransIn")
        let waited = try await post(server, "submit", ["gid": "tcc-wait", "trans_type": "tcc", "wait_result": true])
        #expect(waited.status == 425, "\(waited.body)")
        #expect(waited.json["dtm_result"] as? String == "ONGOING")
        #expect(try await S(server, "tcc-wait") == "submitted")
        try await cronOnce(server, "tcc-wait")
        _ = try await EndToEndSagaTests.waitForStatus(server, "tcc-wait", "succeed", timeout: 10)
        #expect(busi.trail(gid: "tcc-wait") == ["TransInConfirm/confirm", "TransInConfirm/confirm"])
        _ = server.terminate()
        await busi.stop()
    }

    @Test("concurrent sagas (TestSagaCon*): normal, rollback with and without orders, committed ONGOING")
    func concurrentSagas() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        func saga(_ gid: String, orders: Bool, wait: Bool = false) -> [String: Any] {
            var s = EndToEndSagaTests.quickStart(gid, busi: busi, waitResult: wait)
            s["custom_data"] = orders ? #"{"concurrent":true,"orders":{"1":[0]}}"# : #"{"concurrent":true}"#
            return s
        }
        // TestSagaConNormal
        #expect(try await post(server, "submit", saga("con-ok", orders: false, wait: true)).status == 200)
        #expect(Set(busi.trail(gid: "con-ok")) == ["TransOut/action", "TransIn/action"])
        #expect(try await B(server, "con-ok") == ["prepared", "succeed", "prepared", "succeed"])

        // TestSagaConRollbackOrder: TransOut FAILURE, TransIn depends on it and never starts → [s,f,p,p].
        busi.script("TransOut", .failure)
        #expect(try await post(server, "submit", saga("con-rb1", orders: true, wait: true)).status == 409)
        #expect(busi.trail(gid: "con-rb1") == ["TransOut/action", "TransOutRevert/compensate"])
        #expect(try await S(server, "con-rb1") == "failed")
        #expect(try await B(server, "con-rb1") == ["succeed", "failed", "prepared", "prepared"])

        // TestSagaConRollbackOrder2: TransIn FAILURE → step 2 compensated before step 1 → [s,s,s,f].
        busi.script("TransIn", .failure)
        #expect(try await post(server, "submit", saga("con-rb2", orders: true, wait: true)).status == 409)
        #expect(busi.trail(gid: "con-rb2") == ["TransOut/action", "TransIn/action", "TransInRevert/compensate", "TransOutRevert/compensate"])
        #expect(try await B(server, "con-rb2") == ["succeed", "succeed", "succeed", "failed"])

        // TestSagaConRollbackNormal: TransOut FAILURE, TransOutRevert ONGOING once → aborting; cron → failed [s,f,s,s].
        busi.script("TransOut", .failure)
        busi.script("TransOutRevert", .ongoing)
        #expect(try await post(server, "submit", saga("con-rb3", orders: false)).status == 200)
        #expect(await busi.waitFor { _ in busi.calls(gid: "con-rb3").filter { $0.name == "TransOutRevert" }.count == 1 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "con-rb3") == "aborting")
        try await cronOnce(server, "con-rb3")
        _ = try await EndToEndSagaTests.waitForStatus(server, "con-rb3", "failed", timeout: 10)
        #expect(try await B(server, "con-rb3") == ["succeed", "failed", "succeed", "succeed"])
        #expect(busi.trail(gid: "con-rb3").filter { $0 == "TransOutRevert/compensate" }.count == 2)

        // TestSagaConCommittedOngoing: TransOut ONGOING once → [p,p,p,s] submitted; cron → [p,s,p,s].
        busi.script("TransOut", .ongoing)
        #expect(try await post(server, "submit", saga("con-on", orders: false)).status == 200)
        #expect(await busi.waitFor { _ in busi.calls(gid: "con-on").count == 2 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "con-on") == "submitted")
        #expect(try await B(server, "con-on") == ["prepared", "prepared", "prepared", "succeed"])
        try await cronOnce(server, "con-on")
        _ = try await EndToEndSagaTests.waitForStatus(server, "con-on", "succeed", timeout: 10)
        #expect(try await B(server, "con-on") == ["prepared", "succeed", "prepared", "succeed"])
        #expect(busi.trail(gid: "con-on").filter { $0 == "TransIn/action" }.count == 1, "a succeeded branch is not called again")
        _ = server.terminate()
        await busi.stop()
    }
}
