import Foundation
import NIOHTTP1
import Testing

@Suite("end to end: security basics")
struct SecurityTests {
    @Test("AuthToken: every API needs the bearer token; ping and metrics do not")
    func bearerToken() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess(environment: ["AUTH_TOKEN": "s3cret"])
        try await server.start()
        let body = String(
            decoding: try JSONSerialization.data(withJSONObject: EndToEndSagaTests.quickStart("auth-1", busi: busi, waitResult: true)), as: UTF8.self)
        let refused = try await HTTP.post("\(server.base)/submit", body)
        #expect(refused.status == 401)
        #expect(try await HTTP.get("\(server.base)/newGid").status == 401)
        #expect(try await HTTP.get("\(server.base)/query?gid=auth-1").status == 401)
        #expect(try await HTTP.send("\(server.base)/submit", method: .POST, body: body, headers: ["Authorization": "Bearer wrong"]).status == 401)
        #expect(try await HTTP.get("http://127.0.0.1:\(server.httpPort)/api/ping").status == 200)
        #expect(try await HTTP.get("http://127.0.0.1:\(server.httpPort)/api/metrics").status == 200)
        let ok = try await HTTP.send("\(server.base)/submit", method: .POST, body: body, headers: ["Authorization": "Bearer s3cret"])
        #expect(ok.status == 200)
        #expect(busi.calls(gid: "auth-1").count == 2, "refused requests stored nothing; the accepted one ran")
        _ = server.terminate()
        await busi.stop()
    }

    @Test("BranchHostAllowList: a saga naming another host is refused with 400")
    func allowList() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess(environment: ["BRANCH_HOST_ALLOW_LIST": "127.0.0.1, ::1"])
        try await server.start()
        var saga = EndToEndSagaTests.quickStart("allow-1", busi: busi, waitResult: true)
        #expect(try await HTTP.post("\(server.base)/submit", json: saga).status == 200)
        saga["gid"] = "allow-2"
        saga["steps"] = [["action": "http://198.51.100.7:9/TransOut", "compensate": ""]]
        saga["payloads"] = ["{}"]
        let refused = try await HTTP.post("\(server.base)/submit", json: saga)
        #expect(refused.status == 400)
        #expect((refused.json["message"] as? String)?.contains("not in BranchHostAllowList") == true)
        #expect(try await HTTP.get("\(server.base)/query?gid=allow-2").body == #"{"transaction":null,"branches":[]}"#)
        _ = server.terminate()
        await busi.stop()
    }

    @Test("gids with SQL in them: refused where the charset forbids them, stored verbatim where it allows them")
    func sqlInGid() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        _ = try await HTTP.post("\(server.base)/submit", json: EndToEndSagaTests.quickStart("victim", busi: busi, waitResult: true))
        let hostile = ["x' OR '1'='1", "x\"; DROP TABLE trans_global; --", "victim' --"]
        for gid in hostile {
            let encoded = gid.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            for (path, json) in [
                ("submit", true), ("prepare", true), ("abort", true), ("forceStop", true), ("resetNextCronTime", true), ("registerBranch", true),
                ("prepareWorkflow", true),
            ] where json {
                let r = try await HTTP.post("\(server.base)/\(path)", json: ["gid": gid, "trans_type": "tcc", "branch_id": "01"])
                #expect(r.status == 400, "\(path) \(gid) → \(r.status) \(r.body)")
            }
            let q = try await HTTP.get("\(server.base)/query?gid=\(encoded)")
            #expect(q.body == #"{"transaction":null,"branches":[]}"#)
            let all = try await HTTP.get("\(server.base)/all?gid=\(encoded)")
            #expect(all.json["transactions"] is NSNull)
        }
        // Allowed characters that look like SQL are data, bound as parameters.
        let sqlish = "x--1=1+or+1=1"
        #expect(try await HTTP.post("\(server.base)/submit", json: EndToEndSagaTests.quickStart(sqlish, busi: busi, waitResult: true)).status == 200)
        let stored = try await HTTP.get("\(server.base)/query?gid=\(sqlish.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)").json
        #expect((stored["transaction"] as? [String: Any])?["gid"] as? String == sqlish)
        let everything = try await HTTP.get("\(server.base)/all").json
        #expect((everything["transactions"] as? [[String: Any]])?.compactMap { $0["gid"] as? String }.sorted() == [sqlish, "victim"].sorted())
        #expect(try await EndToEndModesTests.status(server, "victim") == "succeed")
        _ = server.terminate()
        await busi.stop()
    }
}
