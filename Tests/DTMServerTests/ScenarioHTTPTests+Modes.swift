import Foundation
import Testing

/// More of DTM's scenarios over JSON/HTTP (`ScenarioHTTPTests`): saga options, and the other modes.
extension ScenarioHTTPTests {
    @Test(
        "saga options: empty URL (TestSagaEmptyUrl), legacy steps[].data (TestSagaCompatibleNormal), branch_headers on the first call and on the cron retry (TestSagaHeaders, TestSagaHeadersYes1), wait_result + ONGOING (TestSagaOptionsCommittedOngoingWait)"
    )
    func sagaOptions() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        let empty: [String: Any] = [
            "gid": "s-empty", "trans_type": "saga", "wait_result": true,
            "steps": [["action": "\(busi.base)/TransOut", "compensate": ""], ["action": "", "compensate": ""]], "payloads": ["{}", "{}"],
        ]
        #expect(try await post(server, "submit", empty).status == 200)
        #expect(busi.trail(gid: "s-empty") == ["TransOut/action"])
        #expect(try await B(server, "s-empty") == ["prepared", "succeed", "prepared", "succeed"])

        // Raw legacy body: steps carry "data" strings, no payloads.
        let legacy =
            #"{"gid":"s-legacy","trans_type":"saga","wait_result":true,"steps":[{"action":"\#(busi.base)/TransOut","compensate":"\#(busi.base)/TransOutRevert","data":"{\"amount\":30}"},{"action":"\#(busi.base)/TransIn","compensate":"\#(busi.base)/TransInRevert","data":"{\"amount\":30}"}]}"#
        let r = try await HTTP.post("\(server.base)/submit", legacy)
        #expect(r.status == 200, "\(r.body)")
        #expect(busi.trail(gid: "s-legacy") == ["TransOut/action", "TransIn/action"])
        #expect(busi.calls(gid: "s-legacy").allSatisfy { $0.body == #"{"amount":30}"# })
        #expect(try await B(server, "s-legacy") == ["prepared", "succeed", "prepared", "succeed"])

        busi.script("TransOut", .ongoing)
        var headers = EndToEndSagaTests.quickStart("s-hdr", busi: busi)
        headers["branch_headers"] = ["test_header": "test"]
        #expect(try await post(server, "submit", headers).status == 200)
        #expect(await busi.waitFor { _ in busi.calls(gid: "s-hdr").count == 1 })
        try await cronOnce(server, "s-hdr")
        _ = try await EndToEndSagaTests.waitForStatus(server, "s-hdr", "succeed", timeout: 10)
        #expect(busi.trail(gid: "s-hdr") == ["TransOut/action", "TransOut/action", "TransIn/action"])
        #expect(busi.calls(gid: "s-hdr").allSatisfy { $0.headers["test_header"] == "test" })

        busi.script("TransOut", .ongoing)
        let waited = try await post(server, "submit", EndToEndSagaTests.quickStart("s-wait-on", busi: busi, waitResult: true))
        #expect(waited.status == 409, "\(waited.body)")
        #expect(try await S(server, "s-wait-on") == "submitted")
        #expect(try await B(server, "s-wait-on") == ["prepared", "prepared", "prepared", "prepared"])
        try await cronOnce(server, "s-wait-on")
        _ = try await EndToEndSagaTests.waitForStatus(server, "s-wait-on", "succeed", timeout: 10)
        #expect(try await B(server, "s-wait-on") == ["prepared", "succeed", "prepared", "succeed"])
        _ = server.terminate()
        await busi.stop()
    }

    @Test(
        "msg: check-back ONGOING, then SUCCESS with TransIn ONGOING → submitted, cron → succeed (TestMsgTimeoutSuccess); delay (TestMsgDelayNormal); concurrent (TestMsgConcurrent); prepare twice, prepare after finish (TestMsgAbnormal)"
    )
    func msg() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        func msg(_ gid: String, _ extra: [String: Any] = [:]) -> [String: Any] {
            [
                "gid": gid, "trans_type": "msg", "query_prepared": "\(busi.base)/QueryPrepared",
                "steps": [["action": "\(busi.base)/TransOut"], ["action": "\(busi.base)/TransIn"]],
                "payloads": [#"{"amount":30}"#, #"{"amount":30}"#],
            ].merging(extra) { _, b in b }
        }
        busi.script("QueryPrepared", .ongoing)
        busi.script("TransIn", .ongoing)
        #expect(try await post(server, "prepare", msg("m-to", ["timeout_to_fail": 1, "retry_interval": 60])).status == 200)
        try await Task.sleep(for: .milliseconds(1100))
        try await cronOnce(server, "m-to")
        #expect(await busi.waitFor { _ in busi.calls(gid: "m-to").count == 1 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "m-to") == "prepared")
        try await cronOnce(server, "m-to")
        #expect(await busi.waitFor { _ in busi.calls(gid: "m-to").count == 4 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "m-to") == "submitted")
        #expect(try await B(server, "m-to") == ["succeed", "prepared"])
        try await cronOnce(server, "m-to")
        _ = try await EndToEndSagaTests.waitForStatus(server, "m-to", "succeed", timeout: 10)
        #expect(busi.trail(gid: "m-to") == ["QueryPrepared/msg", "QueryPrepared/msg", "TransOut/action", "TransIn/action", "TransIn/action"])
        #expect(try await B(server, "m-to") == ["succeed", "succeed"])

        // delay 2: the submit round defers the branches; they run about 2 s later.
        let submitted = Date()
        #expect(try await post(server, "submit", msg("m-delay", ["custom_data": #"{"delay":2}"#])).status == 200)
        try await Task.sleep(for: .milliseconds(700))
        #expect(busi.calls(gid: "m-delay").isEmpty)
        #expect(try await S(server, "m-delay") == "submitted")
        #expect(try await B(server, "m-delay") == ["prepared", "prepared"])
        _ = try await EndToEndSagaTests.waitForStatus(server, "m-delay", "succeed", timeout: 10)
        #expect(Date().timeIntervalSince(submitted) >= 1.9)
        #expect(busi.trail(gid: "m-delay") == ["TransOut/action", "TransIn/action"])

        // concurrent: both branches in one round.
        busi.script("TransOut", BranchService.Answer(delay: 0.5))
        busi.script("TransIn", BranchService.Answer(delay: 0.5))
        let started = Date()
        #expect(try await post(server, "submit", msg("m-con", ["concurrent": true, "wait_result": true])).status == 200)
        #expect(Date().timeIntervalSince(started) < 0.95, "two 0.5 s branches one after the other take ≥ 1 s")
        #expect(Set(busi.trail(gid: "m-con")) == ["TransOut/action", "TransIn/action"])
        #expect(try await B(server, "m-con") == ["succeed", "succeed"])

        // TestMsgAbnormal: prepare twice is fine, submit, then prepare again is refused with 409.
        #expect(try await post(server, "prepare", msg("m-ab")).status == 200)
        #expect(try await post(server, "prepare", msg("m-ab")).status == 200)
        #expect(try await post(server, "submit", msg("m-ab", ["wait_result": true])).status == 200)
        let again = try await post(server, "prepare", msg("m-ab"))
        #expect(again.status == 409, "\(again.body)")
        _ = server.terminate()
        await busi.stop()
    }
    @Test(
        "TCC over JSON-RPC (TestTccJrpcNormal); newGid with params \"\" and registerBranch with a bad trans_type (TestMsgJprcAbnormal2, TestMsgJprcAbnormal); abort with no branches (TestTccCoverPanic, TestXaLocalError); legacy 200 ONGOING body from a cancel (TestTccOldRollback); resubmit while submitted (TestSagaAbnormal)"
    )
    func jsonRPCTCCAndAbnormal() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        let rpc = "http://127.0.0.1:\(server.httpPort)/api/json-rpc"
        func call(_ method: String, _ params: [String: Any]) async throws -> [String: Any] {
            try await HTTP.post(rpc, json: ["jsonrpc": "2.0", "id": "no-use", "method": method, "params": params]).json
        }
        #expect(try await call("prepare", ["gid": "jt-1", "trans_type": "tcc", "protocol": "json-rpc"])["error"] is NSNull)
        for (id, name) in [("01", "TransOut"), ("02", "TransIn")] {
            let r = try await call(
                "registerBranch",
                [
                    "gid": "jt-1", "trans_type": "tcc", "branch_id": id, "data": #"{"amount":30}"#,
                    "confirm": "\(busi.base)/\(name)Confirm", "cancel": "\(busi.base)/\(name)Revert",
                ])
            #expect(r["error"] is NSNull, "\(r)")
        }
        #expect(try await call("submit", ["gid": "jt-1", "trans_type": "tcc", "wait_result": true])["error"] is NSNull)
        #expect(try await S(server, "jt-1") == "succeed")
        #expect(busi.trail(gid: "jt-1") == ["TransInConfirm/confirm", "TransOutConfirm/confirm"])
        #expect(try await B(server, "jt-1") == ["prepared", "succeed", "prepared", "succeed"])

        // TestMsgJprcAbnormal2: newGid with params "" succeeds.
        let gid = try await HTTP.post(rpc, #"{"jsonrpc":"2.0","id":"x","method":"newGid","params":""}"#).json
        #expect(gid["error"] is NSNull, "\(gid)")
        #expect(((gid["result"] as? [String: Any])?["gid"] as? String)?.count == 22)
        // TestMsgJprcAbnormal: registerBranch with an unknown trans_type is refused. DTM panics and answers -32603;
        // we report the bad argument as -32602 (invalid params) with DTM's text, and `result` is `{}` as DTM's.
        let bad = try await call("registerBranch", ["gid": "jt-1", "trans_type": "not-exists", "branch_id": "03"])
        #expect((bad["error"] as? [String: Any])?["code"] as? Int == -32602, "\(bad)")
        #expect((bad["error"] as? [String: Any])?["message"] as? String == "unknow trans type: not-exists")
        #expect((bad["result"] as? [String: Any])?.isEmpty == true)

        // A client whose global function failed before registering anything aborts: failed, nothing called.
        for type in ["tcc", "xa"] {
            #expect(try await post(server, "prepare", ["gid": "ab-\(type)", "trans_type": type]).status == 200)
            #expect(try await post(server, "abort", ["gid": "ab-\(type)", "trans_type": type, "rollback_reason": "user panic"]).status == 200)
            _ = try await EndToEndSagaTests.waitForStatus(server, "ab-\(type)", "failed", timeout: 5)
            #expect(try await transaction(server, "ab-\(type)")["rollback_reason"] as? String == "user panic")
            #expect(try await B(server, "ab-\(type)") == [])
        }

        // A cancel answering the legacy way, 200 {"dtm_result":"ONGOING"}, is ONGOING: aborting until the cron round.
        busi.script("TransOutRevert", BranchService.Answer(status: 200, body: #"{"dtm_result":"ONGOING"}"#))
        #expect(try await post(server, "prepare", ["gid": "tcc-old", "trans_type": "tcc"]).status == 200)
        try await registerTCC(server, busi, "tcc-old", "01", "TransOut")
        try await registerTCC(server, busi, "tcc-old", "02", "TransIn")
        #expect(try await post(server, "abort", ["gid": "tcc-old", "trans_type": "tcc"]).status == 200)
        #expect(await busi.waitFor { _ in busi.calls(gid: "tcc-old").count == 2 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "tcc-old") == "aborting")
        try await cronOnce(server, "tcc-old")
        _ = try await EndToEndSagaTests.waitForStatus(server, "tcc-old", "failed", timeout: 10)
        #expect(try await B(server, "tcc-old") == ["succeed", "prepared", "succeed", "prepared"])

        // TestSagaAbnormal: submit again while submitted re-processes it; after succeed it is refused.
        busi.script("TransOut", .ongoing)
        #expect(try await post(server, "submit", EndToEndSagaTests.quickStart("s-ab", busi: busi)).status == 200)
        #expect(await busi.waitFor { _ in busi.calls(gid: "s-ab").count == 1 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await S(server, "s-ab") == "submitted")
        #expect(try await post(server, "submit", EndToEndSagaTests.quickStart("s-ab", busi: busi, waitResult: true)).status == 200)
        #expect(try await S(server, "s-ab") == "succeed")
        #expect(busi.trail(gid: "s-ab") == ["TransOut/action", "TransOut/action", "TransIn/action"])
        #expect(try await post(server, "submit", EndToEndSagaTests.quickStart("s-ab", busi: busi)).status == 409)
        _ = server.terminate()
        await busi.stop()
    }

    @Test(
        "topics: 20 concurrent subscribes to one new topic, version counts every successful update (TestConcurrentUpdateTopic); HTTP argument errors (TestTopicNormal)"
    )
    func topics() async throws {
        let server = try ServerProcess()
        try await server.start()
        let base = server.base
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for i in 0..<20 {
                group.addTask { (i, try await HTTP.get("\(base)/subscribe?topic=conc&url=http://127.0.0.1:1/u\(i)").status) }
            }
            return try await group.reduce(into: [(Int, Int)]()) { $0.append($1) }
        }
        let ok = results.filter { $0.1 == 200 }.map(\.0)
        #expect(!ok.isEmpty)
        for i in ok {
            #expect(try await HTTP.get("\(base)/unsubscribe?topic=conc&url=http://127.0.0.1:1/u\(i)").status == 200)
        }
        let kv = try #require((try await HTTP.get("\(base)/queryKV?cat=topics&key=conc").json["kv"] as? [[String: Any]])?.first)
        #expect(kv["version"] as? Int == 2 * ok.count, "\(ok.count) successful subscribes")
        #expect(kv["v"] as? String == "[]")
        // TestTopicNormal's error cases over HTTP.
        #expect(try await HTTP.get("\(base)/subscribe?topic=&url=http://x/a").json["message"] as? String == "empty topic")
        #expect(try await HTTP.get("\(base)/subscribe?topic=t1&url=").json["message"] as? String == "empty url")
        #expect(try await HTTP.get("\(base)/unsubscribe?topic=nosuch&url=http://x/a").status == 500)
        #expect(try await HTTP.send("\(base)/topic/nosuch", method: .DELETE, body: nil).status == 500)
        _ = server.terminate()
    }

    @Test(
        "workflow: a second progress row with the same branch id and op is refused (TestWorkflowBranchConflict); prepareWorkflow of a finished workflow returns its result (TestWorkflowRet)"
    )
    func workflowConflictAndResult() async throws {
        let server = try ServerProcess()
        try await server.start()
        let wf: [String: Any] = ["gid": "wf-r", "trans_type": "workflow", "custom_data": #"{"data":"","name":"w"}"#]
        #expect(try await post(server, "prepareWorkflow", wf).status == 200)
        let progress: [String: Any] = ["gid": "wf-r", "trans_type": "workflow", "branch_id": "01", "op": "action", "status": "succeed", "data": "r1"]
        #expect(try await post(server, "registerBranch", progress).status == 200)
        let dup = try await post(server, "registerBranch", progress)
        #expect(dup.status != 200, "\(dup.body)")
        #expect(try await B(server, "wf-r") == ["succeed"])
        #expect(
            try await post(server, "submit", ["gid": "wf-r", "trans_type": "workflow", "req_extra": ["status": "succeed", "result": "cmVz"]]).status == 200)
        let again = try await post(server, "prepareWorkflow", wf).json
        let t = try #require(again["transaction"] as? [String: Any])
        #expect(t["status"] as? String == "succeed")
        #expect(t["result"] as? String == "cmVz")
        #expect((again["progresses"] as? [Any])?.count == 1)
        _ = server.terminate()
    }
}
