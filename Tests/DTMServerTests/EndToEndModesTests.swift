import Foundation
import Testing

/// Every mode over JSON/HTTP against the real server and a real branch service.
@Suite("end to end: tcc, xa, msg, workflow, topics, json-rpc")
struct EndToEndModesTests {
    static func status(_ server: ServerProcess, _ gid: String) async throws -> String? {
        (try await HTTP.get("\(server.base)/query?gid=\(gid)").json["transaction"] as? [String: Any])?["status"] as? String
    }

    static func branchStatuses(_ server: ServerProcess, _ gid: String) async throws -> [String] {
        ((try await HTTP.get("\(server.base)/query?gid=\(gid)").json["branches"] as? [[String: Any]]) ?? []).map { $0["status"] as? String ?? "?" }
    }

    func registerTCC(_ server: ServerProcess, _ busi: BranchService, _ gid: String) async throws {
        #expect(try await HTTP.post("\(server.base)/prepare", json: ["gid": gid, "trans_type": "tcc"]).status == 200)
        for (id, name) in [("01", "TransOut"), ("02", "TransIn")] {
            let r = try await HTTP.post(
                "\(server.base)/registerBranch",
                json: [
                    "gid": gid, "trans_type": "tcc", "branch_id": id, "data": #"{"amount":30}"#,
                    "confirm": "\(busi.base)/\(name)Confirm", "cancel": "\(busi.base)/\(name)Revert",
                ])
            #expect(r.status == 200, "\(r.body)")
        }
    }

    @Test("tcc over HTTP: submit confirms 02 then 01; abort cancels 02 then 01")
    func tcc() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        try await registerTCC(server, busi, "tcc-ok")
        #expect(try await HTTP.post("\(server.base)/submit", json: ["gid": "tcc-ok", "trans_type": "tcc", "wait_result": true]).status == 200)
        #expect(busi.trail(gid: "tcc-ok") == ["TransInConfirm/confirm", "TransOutConfirm/confirm"])
        #expect(busi.calls(gid: "tcc-ok").allSatisfy { $0.method == "POST" && $0.body == #"{"amount":30}"# && $0.query["trans_type"] == "tcc" })
        #expect(try await Self.status(server, "tcc-ok") == "succeed")
        #expect(try await Self.branchStatuses(server, "tcc-ok") == ["prepared", "succeed", "prepared", "succeed"])

        try await registerTCC(server, busi, "tcc-abort")
        let abort = try await HTTP.post("\(server.base)/abort", json: ["gid": "tcc-abort", "trans_type": "tcc", "rollback_reason": "try of 02 failed"])
        #expect(abort.status == 200)
        #expect(await busi.waitFor { _ in busi.calls(gid: "tcc-abort").count == 2 })
        #expect(busi.trail(gid: "tcc-abort") == ["TransInRevert/cancel", "TransOutRevert/cancel"])
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await Self.status(server, "tcc-abort") == "failed")
        let reg = try await HTTP.post("\(server.base)/registerTccBranch", json: ["gid": "tcc-abort", "trans_type": "tcc", "branch_id": "03"])
        #expect(reg.status == 409)
        #expect(reg.json["message"] as? String == "no trans with gid: tcc-abort status: prepared found FAILURE")
        _ = server.terminate()
        await busi.stop()
    }

    @Test("xa over HTTP: commit first to last, always POST")
    func xa() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        _ = try await HTTP.post("\(server.base)/prepare", json: ["gid": "xa-1", "trans_type": "xa"])
        for (id, name) in [("01", "TransOutXa"), ("02", "TransInXa")] {
            #expect(
                try await HTTP.post(
                    "\(server.base)/registerXaBranch", json: ["gid": "xa-1", "trans_type": "xa", "branch_id": id, "url": "\(busi.base)/\(name)"]
                ).status == 200)
        }
        #expect(try await HTTP.post("\(server.base)/submit", json: ["gid": "xa-1", "trans_type": "xa", "wait_result": true]).status == 200)
        #expect(busi.trail(gid: "xa-1") == ["TransOutXa/commit", "TransInXa/commit"])
        #expect(busi.calls(gid: "xa-1").allSatisfy { $0.method == "POST" })
        #expect(try await Self.status(server, "xa-1") == "succeed")
        _ = server.terminate()
        await busi.stop()
    }

    @Test("msg over HTTP: submit runs the actions; a prepared msg is checked back and completed; FAILURE fails it")
    func msg() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        func msg(_ gid: String) -> [String: Any] {
            [
                "gid": gid, "trans_type": "msg", "timeout_to_fail": 1, "query_prepared": "\(busi.base)/QueryPrepared",
                "steps": [["action": "\(busi.base)/TransOut"], ["action": "\(busi.base)/TransIn"]],
                "payloads": [#"{"amount":30}"#, #"{"amount":30}"#],
            ]
        }
        var m = msg("msg-submit")
        m["wait_result"] = true
        #expect(try await HTTP.post("\(server.base)/submit", json: m).status == 200)
        #expect(busi.trail(gid: "msg-submit") == ["TransOut/action", "TransIn/action"])

        #expect(try await HTTP.post("\(server.base)/prepare", json: msg("msg-check")).status == 200)
        #expect(await busi.waitFor { _ in busi.calls(gid: "msg-check").count == 3 })
        #expect(busi.trail(gid: "msg-check") == ["QueryPrepared/msg", "TransOut/action", "TransIn/action"])
        let check = try #require(busi.calls(gid: "msg-check").first)
        #expect(check.method == "GET")
        #expect(check.query["branch_id"] == "00")
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await Self.status(server, "msg-check") == "succeed")

        busi.script("QueryPrepared", .failure)
        #expect(try await HTTP.post("\(server.base)/prepare", json: msg("msg-fail")).status == 200)
        #expect(await busi.waitFor { _ in !busi.calls(gid: "msg-fail").isEmpty })
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await Self.status(server, "msg-fail") == "failed")
        #expect(busi.trail(gid: "msg-fail") == ["QueryPrepared/msg"])
        _ = server.terminate()
        await busi.stop()
    }

    @Test("topics over HTTP: subscribe, msg to topic://, scanKV/queryKV shapes, unsubscribe, delete")
    func topics() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        for name in ["TransOut", "TransIn"] {
            let r = try await HTTP.get("\(server.base)/subscribe?topic=money&url=\(busi.base)/\(name)&remark=r")
            #expect(r.status == 200, "\(r.body)")
        }
        let dup = try await HTTP.get("\(server.base)/subscribe?topic=money&url=\(busi.base)/TransIn")
        #expect(dup.status == 500)
        #expect(dup.json["message"] as? String == "this url exists")
        let submit = try await HTTP.post(
            "\(server.base)/submit",
            json: [
                "gid": "topic-1", "trans_type": "msg", "wait_result": true, "steps": [["action": "topic://money"]], "payloads": ["{}"],
            ])
        #expect(submit.status == 200, "\(submit.body)")
        #expect(busi.calls(gid: "topic-1").map { $0.query["branch_id"] ?? "" } == ["01-01", "01-02"])
        let kv = try await HTTP.get("\(server.base)/queryKV?cat=topics&key=money").json
        let rows = try #require(kv["kv"] as? [[String: Any]])
        #expect(rows.count == 1)
        #expect(rows[0]["version"] as? Int == 2)
        #expect(try await HTTP.get("\(server.base)/queryKV?cat=topics&key=none").body == #"{"kv":[]}"#)
        let scan = try await HTTP.get("\(server.base)/scanKV?cat=topics&limit=1").json
        #expect((scan["kv"] as? [Any])?.count == 1)
        #expect(try await HTTP.get("\(server.base)/unsubscribe?topic=money&url=\(busi.base)/TransIn").status == 200)
        #expect(try await HTTP.send("\(server.base)/topic/money", method: .DELETE, body: nil).status == 200)
        let gone = try await HTTP.post(
            "\(server.base)/submit", json: ["gid": "topic-2", "trans_type": "msg", "steps": [["action": "topic://money"]], "payloads": ["{}"]])
        #expect(gone.status == 500)
        #expect(gone.json["message"] as? String == "topic not found (gid: topic-2)")
        _ = server.terminate()
        await busi.stop()
    }

    @Test("workflow over HTTP: prepareWorkflow shapes, resume callback from the cron loop, submit")
    func workflow() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        let wf: [String: Any] = [
            "gid": "wf-1", "trans_type": "workflow", "protocol": "http", "query_prepared": "\(busi.base)/workflow/resume",
            "custom_data": #"{"data":"eyJhbW91bnQiOjMwfQ==","name":"wfname"}"#,
        ]
        let first = try await HTTP.post("\(server.base)/prepareWorkflow", json: wf).json
        #expect((first["transaction"] as? [String: Any])?["status"] as? String == "prepared")
        #expect((first["progresses"] as? [Any])?.isEmpty == true)
        #expect(
            try await HTTP.post(
                "\(server.base)/registerBranch",
                json: ["gid": "wf-1", "trans_type": "workflow", "branch_id": "01", "op": "action", "status": "succeed", "data": "done"]
            ).status == 200)
        let again = try await HTTP.post("\(server.base)/prepareWorkflow", json: wf).json
        let progresses = try #require(again["progresses"] as? [[String: Any]])
        #expect(progresses.map { $0["op"] as? String } == ["action"])
        #expect(progresses.first?["bin_data"] as? String == Data("done".utf8).base64EncodedString())
        // Bring the cron round forward: the server calls the resume URL with the decoded input.
        _ = try await HTTP.post("\(server.base)/resetNextCronTime", json: ["gid": "wf-1"])
        #expect(await busi.waitFor { _ in !busi.calls(gid: "wf-1").isEmpty })
        let resume = try #require(busi.calls(gid: "wf-1").first)
        #expect(resume.query["op"] == "wfname")
        #expect(resume.query["branch_id"] == "00")
        #expect(resume.body == #"{"amount":30}"#)
        let submit = try await HTTP.post(
            "\(server.base)/submit", json: ["gid": "wf-1", "trans_type": "workflow", "req_extra": ["status": "succeed", "result": "cmVz"]])
        #expect(submit.status == 200)
        let t = try await HTTP.get("\(server.base)/query?gid=wf-1").json["transaction"] as? [String: Any]
        #expect(t?["status"] as? String == "succeed")
        #expect(t?["result"] as? String == "cmVz")
        _ = server.terminate()
        await busi.stop()
    }

    @Test("json-rpc API: newGid, submit, error envelopes; json-rpc branches get a JSON-RPC request")
    func jsonRPC() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        let rpc = "http://127.0.0.1:\(server.httpPort)/api/json-rpc"
        let gid = try await HTTP.post(rpc, json: ["jsonrpc": "2.0", "id": "no-use", "method": "newGid"]).json
        #expect(((gid["result"] as? [String: Any])?["gid"] as? String)?.count == 22)
        #expect(gid["error"] is NSNull)
        let submit = try await HTTP.post(
            rpc,
            json: [
                "jsonrpc": "2.0", "id": "no-use", "method": "submit",
                "params": [
                    "gid": "rpc-1", "trans_type": "saga", "wait_result": true,
                    "steps": [["action": "\(busi.base)/TransOut?method=TransOut", "compensate": "\(busi.base)/TransOutRevert?method=TransOutRevert"]],
                    "payloads": [#"{"amount":30}"#],
                ],
            ]
        ).json
        #expect(submit["error"] is NSNull, "\(submit)")
        let call = try #require(busi.calls.first { $0.name == "TransOut" })
        let body = try #require(try JSONSerialization.jsonObject(with: Data(call.body.utf8)) as? [String: Any])
        #expect(body["jsonrpc"] as? String == "2.0")
        #expect(body["method"] as? String == "TransOut")
        let params = try #require(body["params"] as? [String: Any])
        #expect(params["amount"] as? Int == 30)
        #expect(params["gid"] as? String == "rpc-1")
        #expect(params["op"] as? String == "action")
        let again = try await HTTP.post(
            rpc,
            json: [
                "jsonrpc": "2.0", "id": "x", "method": "submit",
                "params": ["gid": "rpc-1", "trans_type": "saga", "steps": [["action": "a"]], "payloads": ["{}"]],
            ]
        ).json
        #expect((again["error"] as? [String: Any])?["code"] as? Int == -32901)
        let unknown = try await HTTP.post(rpc, json: ["jsonrpc": "2.0", "id": "x", "method": "nope"]).json
        #expect((unknown["error"] as? [String: Any])?["code"] as? Int == -32601)
        let numericID = try await HTTP.post(rpc, #"{"jsonrpc":"2.0","id":1,"method":"newGid"}"#)
        #expect(numericID.status == 400)
        #expect((numericID.json["error"] as? [String: Any])?["code"] as? Int == -32700)
        let badVersion = try await HTTP.post(rpc, json: ["jsonrpc": "1.0", "id": "x", "method": "newGid"]).json
        #expect((badVersion["error"] as? [String: Any])?["code"] as? Int == -32600)
        _ = server.terminate()
        await busi.stop()
    }

    @Test("alert webhook: fires once a branch has backed off AlertRetryLimit times")
    func alertWebHook() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess(environment: ["ALERT_WEB_HOOK": "\(busi.base)/AlertWebHook", "ALERT_RETRY_LIMIT": "2"])
        try await server.start()
        busi.script("TransOut", .error, .error, .error)
        _ = try await HTTP.post("\(server.base)/submit", json: EndToEndSagaTests.quickStart("alert-1", busi: busi))
        for n in 2...3 {
            #expect(await busi.waitFor { _ in busi.calls(gid: "alert-1").count == n - 1 })
            try await Task.sleep(for: .milliseconds(100))
            _ = try await HTTP.post("\(server.base)/resetNextCronTime", json: ["gid": "alert-1"])
        }
        #expect(await busi.waitFor { $0.contains { $0.name == "AlertWebHook" } })
        let alert = try #require(busi.calls.first { $0.name == "AlertWebHook" })
        let body = try #require(try JSONSerialization.jsonObject(with: Data(alert.body.utf8)) as? [String: Any])
        #expect(body["gid"] as? String == "alert-1")
        #expect(body["status"] as? String == "submitted")
        #expect((body["branch"] as? String)?.hasSuffix("/TransOut") == true)
        #expect(body["retry_count"] as? Int == 2)
        _ = server.terminate()
        await busi.stop()
    }
}
