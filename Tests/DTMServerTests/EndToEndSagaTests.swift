import Foundation
import Testing

/// The real dtm-server process on loopback, a real HTTP branch service, a real SQLite file.
@Suite("end to end: sagas over JSON/HTTP")
struct EndToEndSagaTests {
    /// DTM's quick-start saga: TransOut then TransIn, body {"amount":30}.
    static func quickStart(_ gid: String, busi: BranchService, transIn: String = "TransIn", waitResult: Bool = false) -> [String: Any] {
        [
            "gid": gid, "trans_type": "saga", "wait_result": waitResult,
            "steps": [
                ["action": "\(busi.base)/TransOut", "compensate": "\(busi.base)/TransOutRevert"],
                ["action": "\(busi.base)/\(transIn)", "compensate": "\(busi.base)/TransInRevert"],
            ],
            "payloads": [#"{"amount":30}"#, #"{"amount":30}"#],
        ]
    }

    static func waitForStatus(_ server: ServerProcess, _ gid: String, _ status: String, timeout: Double = 20) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        var last: [String: Any] = [:]
        while Date() < deadline {
            last = try await HTTP.get("\(server.base)/query?gid=\(gid)").json
            if (last["transaction"] as? [String: Any])?["status"] as? String == status { return last }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("\(gid) did not reach \(status); last query: \(last)\nserver log:\n\(server.log())")
    }

    @Test("quick-start saga: TransOut then TransIn, succeed, DTM's query shape")
    func quickStartSucceeds() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        let gid = try #require(try await HTTP.get("\(server.base)/newGid").json["gid"] as? String)
        let submit = try await HTTP.post("\(server.base)/submit", json: Self.quickStart(gid, busi: busi))
        #expect(submit.status == 200)
        #expect(submit.body == #"{"dtm_result":"SUCCESS"}"#)
        let q = try await Self.waitForStatus(server, gid, "succeed")
        #expect(busi.trail(gid: gid) == ["TransOut/action", "TransIn/action"])
        let first = try #require(busi.calls(gid: gid).first)
        #expect(first.method == "POST")
        #expect(first.body == #"{"amount":30}"#)
        #expect(first.query == ["gid": gid, "trans_type": "saga", "branch_id": "01", "op": "action"])
        #expect(first.headers["content-type"] == "application/json")
        let t = try #require(q["transaction"] as? [String: Any])
        #expect(t["trans_type"] as? String == "saga")
        #expect(t["protocol"] as? String == "http")
        #expect((t["create_time"] as? String)?.contains("T") == true)
        #expect(t["finish_time"] != nil)
        let branches = try #require(q["branches"] as? [[String: Any]])
        #expect(branches.map { $0["status"] as? String } == ["prepared", "succeed", "prepared", "succeed"])
        #expect(branches.map { $0["op"] as? String } == ["compensate", "action", "compensate", "action"])
        #expect(branches.map { $0["branch_id"] as? String } == ["01", "01", "02", "02"])
        #expect(branches[1]["bin_data"] as? String == Data(#"{"amount":30}"#.utf8).base64EncodedString())
        let metrics = try await HTTP.get("http://127.0.0.1:\(server.httpPort)/api/metrics")
        #expect(metrics.status == 200)
        // Both actions, in one series: there is no branch id label.
        #expect(metrics.body.contains(#"dtm_branch_process_total{model="saga",branchtype="action",status="ok"} 2"#), "\(metrics.body)")
        #expect(!metrics.body.contains("branchid"))
        #expect(metrics.body.contains(#"dtm_transaction_process_total{model="saga",status="ok"} 1"#))
        #expect(metrics.body.contains(#"dtm_server_process_total{type="http",api="submit",status="ok"} 1"#))
        _ = server.terminate()
        await busi.stop()
    }

    @Test("failing variant: TransIn answers FAILURE, both steps are compensated in reverse order")
    func failingVariantCompensates() async throws {
        let busi = try await BranchService.start()
        busi.script("TransIn", .failure)
        let server = try ServerProcess()
        try await server.start()
        let submit = try await HTTP.post("\(server.base)/submit", json: Self.quickStart("fail-1", busi: busi))
        #expect(submit.status == 200)
        let q = try await Self.waitForStatus(server, "fail-1", "failed")
        #expect(busi.trail(gid: "fail-1") == ["TransOut/action", "TransIn/action", "TransInRevert/compensate", "TransOutRevert/compensate"])
        let t = try #require(q["transaction"] as? [String: Any])
        #expect((t["rollback_reason"] as? String)?.contains("insufficient balance") == true)
        let branches = try #require(q["branches"] as? [[String: Any]])
        #expect(branches.map { $0["status"] as? String } == ["succeed", "succeed", "succeed", "failed"])
        _ = server.terminate()
        await busi.stop()
    }

    @Test("wait_result: 200 when the saga succeeded, 409 with the reason when it failed")
    func waitResult() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        let ok = try await HTTP.post("\(server.base)/submit", json: Self.quickStart("wr-ok", busi: busi, waitResult: true))
        #expect(ok.status == 200)
        #expect(try await HTTP.get("\(server.base)/query?gid=wr-ok").json["transaction"].flatMap { ($0 as? [String: Any])?["status"] as? String } == "succeed")
        busi.script("TransIn", .failure)
        let failed = try await HTTP.post("\(server.base)/submit", json: Self.quickStart("wr-fail", busi: busi, waitResult: true))
        #expect(failed.status == 409)
        #expect(failed.json["dtm_result"] as? String == "FAILURE")
        #expect((failed.json["message"] as? String)?.contains("insufficient balance") == true)
        let again = try await HTTP.post("\(server.base)/submit", json: Self.quickStart("wr-fail", busi: busi))
        #expect(again.status == 409)
        #expect(again.json["message"] as? String == "current status 'failed', cannot sumbmit. FAILURE")
        _ = server.terminate()
        await busi.stop()
    }

    @Test("kill -9 mid-saga, restart: the saga completes and finished steps are not repeated")
    func crashMidSaga() async throws {
        let busi = try await BranchService.start()
        // TransIn answers slowly the first time: the server is killed while waiting for it.
        busi.script("TransIn", BranchService.Answer(delay: 30))
        let server = try ServerProcess()
        try await server.start()
        let submit = try await HTTP.post("\(server.base)/submit", json: Self.quickStart("crash-1", busi: busi))
        #expect(submit.status == 200, "acknowledged")
        #expect(await busi.waitFor { calls in calls.contains { $0.name == "TransIn" } })
        server.kill9()
        try await server.start()
        // No help from outside: the cron loop finds it once its next_cron_time (creation + 10 s) has passed.
        let q = try await Self.waitForStatus(server, "crash-1", "succeed", timeout: 30)
        #expect(busi.trail(gid: "crash-1") == ["TransOut/action", "TransIn/action", "TransIn/action"])
        let branches = try #require(q["branches"] as? [[String: Any]])
        #expect(branches.map { $0["status"] as? String } == ["prepared", "succeed", "prepared", "succeed"])
        _ = server.terminate()
        await busi.stop()
    }

    @Test("resetNextCronTime: a backed-off saga retries at once")
    func resetNextCronTime() async throws {
        let busi = try await BranchService.start()
        busi.script("TransOut", .error)
        let server = try ServerProcess()
        try await server.start()
        _ = try await HTTP.post("\(server.base)/submit", json: Self.quickStart("rn-1", busi: busi))
        #expect(await busi.waitFor { $0.count == 1 })
        try await Task.sleep(for: .milliseconds(200))
        let reset = try await HTTP.post("\(server.base)/resetNextCronTime", json: ["gid": "rn-1"])
        #expect(reset.status == 200)
        _ = try await Self.waitForStatus(server, "rn-1", "succeed", timeout: 5)
        _ = server.terminate()
        await busi.stop()
    }

    @Test("forceStop fails a running saga without compensation; all pages transactions")
    func forceStopAndAll() async throws {
        let busi = try await BranchService.start()
        busi.script("TransOut", .ongoing)
        let server = try ServerProcess()
        try await server.start()
        _ = try await HTTP.post("\(server.base)/submit", json: Self.quickStart("fs-1", busi: busi))
        #expect(await busi.waitFor { $0.count == 1 })
        #expect(try await HTTP.post("\(server.base)/forceStop", json: ["gid": "fs-1"]).status == 200)
        _ = try await Self.waitForStatus(server, "fs-1", "failed")
        #expect(try await HTTP.post("\(server.base)/forceStop", json: ["gid": "fs-1"]).status == 409)
        for i in 0..<3 { _ = try await HTTP.post("\(server.base)/submit", json: Self.quickStart("all-\(i)", busi: busi, waitResult: true)) }
        let page = try await HTTP.get("\(server.base)/all?limit=2").json
        #expect((page["transactions"] as? [Any])?.count == 2)
        let next = try #require(page["next_position"] as? String)
        #expect(!next.isEmpty)
        let rest = try await HTTP.get("\(server.base)/all?limit=100&position=\(next)").json
        #expect((rest["transactions"] as? [Any])?.count == 2)
        #expect(rest["next_position"] as? String == "")
        let filtered = try await HTTP.get("\(server.base)/all?status=failed").json
        #expect((filtered["transactions"] as? [[String: Any]])?.map { $0["gid"] as? String } == ["fs-1"])
        let reset = try await HTTP.get("\(server.base)/resetCronTime").json
        #expect(reset["succeed_count"] as? Int == 0)
        #expect(reset["has_remaining"] as? Bool == false)
        _ = server.terminate()
        await busi.stop()
    }
}
