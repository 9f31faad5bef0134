import Logging
import DTMCore
import DTMGRPC
import Foundation
import HTTP2
import Testing

/// The real server's gRPC listener, called with a real HTTP/2 gRPC client, calling real gRPC branch services.
@Suite("end to end: gRPC")
struct EndToEndGRPCTests {
    static let pool = GRPCConnectionPool(logger: Logger(label: "test"))

    static func call(_ server: ServerProcess, _ method: String, _ message: [UInt8], metadata: [(String, String)] = []) async -> GRPCCallResult {
        await pool.unary(authority: "127.0.0.1:\(server.grpcPort)", path: "/dtmgimp.Dtm/\(method)", metadata: metadata, message: message, timeout: .seconds(10))
    }

    /// The go-zero scenario: sign a user's tag, then create the user; each with its Revert.
    static func goZeroSaga(_ gid: String, tag: GRPCBranchService, user: GRPCBranchService, waitResult: Bool = true) -> [UInt8] {
        var r = TransactionRequest(gid: gid, transType: "saga")
        r.steps = [
            TransStep(action: tag.url("/tag.TagSign/SignUserChooseTag"), compensate: tag.url("/tag.TagSign/SignUserChooseTagRevert")),
            TransStep(action: user.url("/user.UserService/UserCreate"), compensate: user.url("/user.UserService/UserCreateRevert")),
        ]
        r.payloads = [[0x08, 0x01], [0x0A, 0x03, 0x62, 0x6F, 0x62]]
        r.options.waitResult = waitResult
        r.options.branchHeaders = ["x-tenant": "t1"]
        return packed { try ProtoCodec.encodeRequest(r) }
    }

    @Test("go-zero saga over gRPC succeeds; branches get DTM's metadata and the payload bytes untouched")
    func goZeroSucceeds() async throws {
        let tag = try await GRPCBranchService.start()
        let user = try await GRPCBranchService.start()
        let server = try ServerProcess()
        try await server.start()
        let gidReply = await Self.call(server, "NewGid", [])
        #expect(gidReply.isOK)
        #expect(gidReply.message.count == 24, "DtmGidReply with a 22-character gid")
        let result = await Self.call(server, "Submit", Self.goZeroSaga("gz-ok", tag: tag, user: user))
        #expect(result.isOK, "\(result.status)")
        #expect(tag.trail(gid: "gz-ok") == ["SignUserChooseTag/action"])
        #expect(user.trail(gid: "gz-ok") == ["UserCreate/action"])
        let call = try #require(user.calls(gid: "gz-ok").first)
        #expect(call.message == [0x0A, 0x03, 0x62, 0x6F, 0x62])
        #expect(call.metadata["dtm-trans_type"] == "saga")
        #expect(call.metadata["dtm-branch_id"] == "02")
        #expect(call.metadata["dtm-dtm"] == "")
        #expect(call.metadata["x-tenant"] == "t1")
        #expect(call.metadata["content-type"]?.hasPrefix("application/grpc") == true)
        // Visible through the JSON API, as a grpc transaction.
        let q = try await HTTP.get("\(server.base)/query?gid=gz-ok").json
        let t = try #require(q["transaction"] as? [String: Any])
        #expect(t["status"] as? String == "succeed")
        #expect(t["protocol"] as? String == "grpc")
        _ = server.terminate()
        await tag.stop()
        await user.stop()
    }

    @Test("go-zero saga: UserCreate answers ABORTED, both steps are compensated in reverse order")
    func goZeroCompensates() async throws {
        let tag = try await GRPCBranchService.start()
        let user = try await GRPCBranchService.start()
        user.script("/user.UserService/UserCreate", GRPCStatus(.aborted, "user exists"))
        let server = try ServerProcess()
        try await server.start()
        let result = await Self.call(server, "Submit", Self.goZeroSaga("gz-fail", tag: tag, user: user))
        #expect(result.status.code == .aborted)
        #expect(result.status.message.contains("user exists"))
        #expect(user.trail(gid: "gz-fail") == ["UserCreate/action", "UserCreateRevert/compensate"])
        #expect(tag.trail(gid: "gz-fail") == ["SignUserChooseTag/action", "SignUserChooseTagRevert/compensate"])
        let revertUser = try #require(user.calls(gid: "gz-fail").last)
        let revertTag = try #require(tag.calls(gid: "gz-fail").last)
        #expect(revertUser.op == "compensate" && revertTag.op == "compensate")
        #expect(try await EndToEndModesTests.status(server, "gz-fail") == "failed")
        // FAILED_PRECONDITION is ONGOING: the saga waits and is resumed by the cron loop.
        user.script("/user.UserService/UserCreate", GRPCStatus(.failedPrecondition, "later"))
        _ = await Self.call(server, "Submit", Self.goZeroSaga("gz-ongoing", tag: tag, user: user, waitResult: false))
        #expect(await Self.waitFor { user.calls(gid: "gz-ongoing").count == 1 })
        // Let the round store its ONGOING outcome first: its schedule update would push an earlier reset back out.
        try await Task.sleep(for: .milliseconds(300))
        _ = try await HTTP.post("\(server.base)/resetNextCronTime", json: ["gid": "gz-ongoing"])
        _ = try await EndToEndSagaTests.waitForStatus(server, "gz-ongoing", "succeed", timeout: 10)
        _ = server.terminate()
        await tag.stop()
        await user.stop()
    }

    @Test("a saga submitted over HTTP with gRPC branch URLs completes through the gRPC branches")
    func httpSubmitGRPCBranches() async throws {
        let user = try await GRPCBranchService.start()
        let server = try ServerProcess()
        try await server.start()
        let r = try await HTTP.post(
            "\(server.base)/submit",
            json: [
                "gid": "cross-1", "trans_type": "saga", "protocol": "grpc", "wait_result": true,
                "steps": [["action": user.url("/user.UserService/UserCreate"), "compensate": user.url("/user.UserService/UserCreateRevert")]],
                "payloads": ["raw"],
            ])
        #expect(r.status == 200, "\(r.body)")
        #expect(user.calls(gid: "cross-1").map(\.message) == [Array("raw".utf8)])
        _ = server.terminate()
        await user.stop()
    }

    @Test("tcc over gRPC: Prepare, RegisterBranch, Submit confirms; Abort cancels; PrepareWorkflow; topics")
    func otherMethods() async throws {
        let busi = try await GRPCBranchService.start()
        let server = try ServerProcess()
        try await server.start()
        for gid in ["gt-ok", "gt-abort"] {
            var r = TransactionRequest(gid: gid, transType: "tcc")
            r.options.waitResult = true
            #expect(await Self.call(server, "Prepare", try ProtoCodec.encodeRequest(r)).isOK)
            for (id, name) in [("01", "TransOut"), ("02", "TransIn")] {
                let reg = BranchRegistration(
                    gid: gid, transType: "tcc", branchID: id,
                    data: [
                        "confirm": busi.url("/busi.Busi/\(name)Confirm"), "cancel": busi.url("/busi.Busi/\(name)Revert"),
                    ], busiPayload: [0x08, 0x1E])
                #expect(await Self.call(server, "RegisterBranch", try ProtoCodec.encodeBranchRequest(reg)).isOK)
            }
            #expect(await Self.call(server, gid == "gt-ok" ? "Submit" : "Abort", try ProtoCodec.encodeRequest(r)).isOK)
        }
        #expect(busi.trail(gid: "gt-ok") == ["TransInConfirm/confirm", "TransOutConfirm/confirm"])
        #expect(busi.trail(gid: "gt-abort") == ["TransInRevert/cancel", "TransOutRevert/cancel"])
        #expect(busi.calls(gid: "gt-ok").allSatisfy { $0.message == [0x08, 0x1E] })
        let late = BranchRegistration(gid: "gt-ok", transType: "tcc", branchID: "03", data: [:], busiPayload: [])
        let refused = await Self.call(server, "RegisterBranch", try ProtoCodec.encodeBranchRequest(late))
        #expect(refused.status.code == .aborted)
        #expect(refused.status.message == "no trans with gid: gt-ok status: prepared found FAILURE")

        var wf = TransactionRequest(gid: "gw-1", transType: "workflow")
        wf.customData = #"{"name":"wf"}"#
        let first = await Self.call(server, "PrepareWorkflow", try ProtoCodec.encodeRequest(wf))
        #expect(first.isOK)
        #expect(first.message.count > 4)
        let topic: [UInt8] = [0x0A, 0x01, 0x74, 0x12, 0x03, 0x75, 0x72, 0x6C]  // Topic "t", URL "url"
        #expect(await Self.call(server, "Subscribe", topic).isOK)
        let dup = await Self.call(server, "Subscribe", topic)
        #expect(dup.status.code == .unknown)
        #expect(dup.status.message == "this url exists")
        #expect(await Self.call(server, "Unsubscribe", topic).isOK)
        #expect(await Self.call(server, "DeleteTopic", topic).isOK)
        _ = server.terminate()
        await busi.stop()
    }

    @Test("gRPC errors: finished gid ABORTED, bad input INVALID_ARGUMENT, unknown method UNIMPLEMENTED, oversized RESOURCE_EXHAUSTED, token UNAUTHENTICATED")
    func errors() async throws {
        let busi = try await GRPCBranchService.start()
        let server = try ServerProcess(environment: ["GRPC_MAX_MESSAGE_SIZE": "65536", "AUTH_TOKEN": "tok"])
        try await server.start()
        let auth = [("authorization", "Bearer tok")]
        #expect(await Self.call(server, "NewGid", []).status.code == .unauthenticated)
        let saga = Self.goZeroSaga("ge-1", tag: busi, user: busi)
        #expect(await Self.call(server, "Submit", saga, metadata: auth).isOK)
        let again = await Self.call(server, "Submit", saga, metadata: auth)
        #expect(again.status.code == .aborted)
        #expect(again.status.message == "current status 'succeed', cannot sumbmit. FAILURE")
        let noType = await Self.call(server, "Submit", try ProtoCodec.encodeRequest(TransactionRequest(gid: "ge-2", transType: "")), metadata: auth)
        #expect(noType.status.code == .invalidArgument)
        #expect(await Self.call(server, "Submit", [0x0A, 0xFF], metadata: auth).status.code == .invalidArgument)
        let unknown = await Self.pool.unary(
            authority: "127.0.0.1:\(server.grpcPort)", path: "/dtmgimp.Dtm/Nope", metadata: auth, message: [], timeout: .seconds(5))
        #expect(unknown.status.code == .unimplemented)
        var big = TransactionRequest(gid: "ge-3", transType: "saga")
        big.steps = [TransStep(action: busi.url("/busi.Busi/TransOut"))]
        big.payloads = [[UInt8](repeating: 7, count: 100_000)]
        #expect(await Self.call(server, "Submit", try ProtoCodec.encodeRequest(big), metadata: auth).status.code == .resourceExhausted)
        #expect(await Self.call(server, "NewGid", [], metadata: auth).isOK, "still serving")
        let health = await Self.pool.unary(authority: "127.0.0.1:\(server.grpcPort)", path: "/grpc.health.v1.Health/Check", message: [], timeout: .seconds(5))
        #expect(health.isOK && health.message == [0x08, 0x01], "health needs no token")
        _ = server.terminate()
        await busi.stop()
    }

    @Test("msg, xa and workflow over gRPC: check-back, commit order, resume call with workflow.WorkflowData")
    func msgXAWorkflow() async throws {
        let busi = try await GRPCBranchService.start()
        let server = try ServerProcess()
        try await server.start()
        var msg = TransactionRequest(gid: "gm-1", transType: "msg")
        msg.steps = [TransStep(action: busi.url("/busi.Busi/TransOut")), TransStep(action: busi.url("/busi.Busi/TransIn"))]
        msg.payloads = [[1], [2]]
        msg.queryPrepared = busi.url("/busi.Busi/QueryPrepared")
        msg.options.timeoutToFail = 1
        #expect(await Self.call(server, "Prepare", try ProtoCodec.encodeRequest(msg)).isOK)
        _ = try await EndToEndSagaTests.waitForStatus(server, "gm-1", "succeed", timeout: 10)
        #expect(busi.trail(gid: "gm-1") == ["QueryPrepared/msg", "TransOut/action", "TransIn/action"])
        #expect(busi.calls(gid: "gm-1").first?.metadata["dtm-branch_id"] == "00")

        var xa = TransactionRequest(gid: "gx-1", transType: "xa")
        xa.options.waitResult = true
        #expect(await Self.call(server, "Prepare", try ProtoCodec.encodeRequest(xa)).isOK)
        for (id, name) in [("01", "TransOutXa"), ("02", "TransInXa")] {
            let reg = BranchRegistration(gid: "gx-1", transType: "xa", branchID: id, data: ["url": busi.url("/busi.Busi/\(name)")], busiPayload: [])
            #expect(await Self.call(server, "RegisterBranch", try ProtoCodec.encodeBranchRequest(reg)).isOK)
        }
        #expect(await Self.call(server, "Submit", try ProtoCodec.encodeRequest(xa)).isOK)
        #expect(busi.trail(gid: "gx-1") == ["TransOutXa/commit", "TransInXa/commit"])

        var wf = TransactionRequest(gid: "gw-2", transType: "workflow")
        wf.customData = #"{"data":"YWJj","name":"wfname"}"#
        wf.queryPrepared = busi.url("/workflow.Workflow/Execute")
        #expect(await Self.call(server, "PrepareWorkflow", try ProtoCodec.encodeRequest(wf)).isOK)
        _ = try await HTTP.post("\(server.base)/resetNextCronTime", json: ["gid": "gw-2"])
        #expect(await Self.waitFor { !busi.calls(gid: "gw-2").isEmpty })
        let resume = try #require(busi.calls(gid: "gw-2").first)
        #expect(resume.method == "/workflow.Workflow/Execute")
        #expect(resume.op == "wfname")
        #expect(resume.message == [0x0A, 3, 0x61, 0x62, 0x63], "workflow.WorkflowData { Data: \"abc\" }")
        _ = server.terminate()
        await busi.stop()
    }

    static func waitFor(timeout: Double = 10, _ predicate: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if predicate() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return predicate()
    }
}

/// A message packed by `body`; a failure to pack fails the test (and sends nothing useful).
func packed(_ body: () throws -> [UInt8]) -> [UInt8] {
    do {
        return try body()
    } catch {
        Issue.record("cannot pack the request: \(error)")
        return []
    }
}
