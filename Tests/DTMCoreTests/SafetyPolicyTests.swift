@testable import DTMCore
import Testing

@Suite("safety policies")
struct SafetyPolicyTests {
    @Test("back-off doubles up to MaxRetryInterval, and without a cap when it is 0")
    func backOffCap() {
        var c = EngineConfig()
        c.maxRetryInterval = 60
        let o = TransOptions()
        #expect(c.nextInterval(.backOff, current: 40, options: o) == 60)
        #expect(c.nextInterval(.backOff, current: 60, options: o) == 60)
        c.maxRetryInterval = 0
        #expect(c.nextInterval(.backOff, current: 640, options: o) == 1280)
        // Doubling without a cap saturates instead of overflowing.
        #expect(c.nextInterval(.backOff, current: Int64.max / 2 + 1, options: o) == Int64.max)
        #expect(c.nextInterval(.backOff, current: Int64.max, options: o) == Int64.max)
    }

    @Test("branch hosts: any host without an allow-list; with one, other hosts are refused at submit")
    func allowList() async throws {
        var config = EngineConfig()
        config.branchHostAllowList = try BranchHostAllowList(parsing: "127.0.0.1, ::1,busi")
        let h = Harness(config: config)
        var r = h.saga("al1", steps: 1)
        r.steps = [TransStep(action: "http://127.0.0.1:1/a", compensate: "http://evil.example:1/c")]
        await #expect(throws: DTMError.invalidArgument("steps[0]: host 'evil.example:1' is not in BranchHostAllowList")) {
            try await h.coordinator.submit(r)
        }
        #expect(try await h.status("al1") == nil)
        r.steps = [TransStep(action: "http://127.0.0.1:1/a", compensate: "127.0.0.1:2/busi.Busi/C")]
        try await h.coordinator.submit(r)
        await #expect(throws: DTMError.self) { try await h.coordinator.subscribe(topic: "t", url: "http://10.1.2.3/x", remark: "") }
    }

    @Test("branch headers the wire cannot carry are refused at submit, naming the header; nothing is stored")
    func branchHeaders() async throws {
        let h = Harness(config: EngineConfig())
        var r = h.saga("bh1", steps: 1)
        r.options.branchHeaders = ["X-Ok": "a\tb", "X-Bad": "a\r\nInjected: 1"]
        await #expect(throws: DTMError.invalidArgument("branch_headers: the value of header 'X-Bad' contains the control character 0xd")) {
            try await h.coordinator.submit(r)
        }
        // Headers that choose the virtual host, frame the request or steer connections and proxies are the
        // coordinator's: refused on every API (they all validate here), naming the header.
        for name in [
            ":path", ":authority", "Host", "host", "Content-Length", "Transfer-Encoding", "Connection", "TE", "Upgrade", "Keep-Alive", "Proxy-Authorization",
        ] {
            r.options.branchHeaders = [name: "admin.internal"]
            await #expect(
                throws: DTMError.invalidArgument(
                    "branch_headers: header '\(name)' may not be set: the coordinator sets it (Host, Content-Length, Transfer-Encoding, Connection, TE, Upgrade, Keep-Alive, Proxy-* and pseudo-headers are refused)"
                )
            ) {
                try await h.coordinator.submit(r)
            }
        }
        r.options.branchHeaders = ["": "x"]
        await #expect(throws: DTMError.invalidArgument("branch_headers: a header name is empty")) { try await h.coordinator.submit(r) }
        #expect(try await h.status("bh1") == nil)
        r.options.branchHeaders = Dictionary(uniqueKeysWithValues: (0..<65).map { ("h\($0)", "v") })
        await #expect(throws: DTMError.invalidArgument("branch_headers has 65 entries; the limit is 64")) { try await h.coordinator.submit(r) }
        r.options.branchHeaders = ["big": String(repeating: "v", count: 16 * 1024)]
        await #expect(throws: DTMError.invalidArgument("branch_headers hold 16387 bytes; the limit is 16384")) {
            try await h.coordinator.submit(r)
        }
        r.options.branchHeaders = ["X-Ok": "a\tb ü", "authorization": "Bearer x"]
        try await h.coordinator.submit(r)
        #expect(try await h.status("bh1") != nil)
    }

    @Test("bearer token: exact match only, constant-time comparison")
    func bearer() {
        let t = BearerToken("s3cret")!
        #expect(t.accepts("Bearer s3cret"))
        #expect(t.accepts("bearer s3cret"))
        #expect(!t.accepts("Bearer s3cre"))
        #expect(!t.accepts("Bearer s3cret2"))
        #expect(!t.accepts("s3cret"))
        #expect(!t.accepts(nil))
        #expect(BearerToken("") == nil)
    }

    @Test("access policy: client and admin tokens, the admin token falls back to AuthToken, secrets for admins only")
    func access() {
        let both = AccessPolicy(authToken: "c", adminToken: "a")
        #expect(both.allows(.open, authorization: nil))
        #expect(both.allows(.client, authorization: "Bearer c") && both.allows(.client, authorization: "Bearer a"))
        #expect(!both.allows(.client, authorization: nil) && !both.allows(.client, authorization: "Bearer x"))
        #expect(both.allows(.admin, authorization: "Bearer a") && !both.allows(.admin, authorization: "Bearer c"))
        #expect(both.revealsSecrets(authorization: "Bearer a") && !both.revealsSecrets(authorization: "Bearer c"))
        let authOnly = AccessPolicy(authToken: "c", adminToken: "")
        #expect(authOnly.allows(.admin, authorization: "Bearer c") && !authOnly.allows(.admin, authorization: nil))
        let adminOnly = AccessPolicy(authToken: "", adminToken: "a")
        #expect(adminOnly.allows(.client, authorization: nil) && !adminOnly.allows(.admin, authorization: nil))
        #expect(AccessPolicy.open.allows(.admin, authorization: nil) && !AccessPolicy.open.revealsSecrets(authorization: nil))
    }

    @Test("bounded fan-out: subscribers per topic, a msg's rows with its topics, registered branches per gid, queryKV")
    func boundedFanOut() async throws {
        var config = EngineConfig()
        config.limits.maxSteps = 3  // 6 branch rows per transaction
        config.limits.maxSubscribersPerTopic = 4
        let h = Harness(config: config)
        for i in 1...4 { try await h.coordinator.subscribe(topic: "t", url: "http://s\(i)/x", remark: "") }
        await #expect(throws: DTMError.invalidArgument("topic t has 4 subscribers; the limit is 4")) {
            try await h.coordinator.subscribe(topic: "t", url: "http://s5/x", remark: "")
        }
        await #expect(throws: DTMError.self) {
            try await h.coordinator.subscribe(topic: String(repeating: "t", count: 129), url: "http://s/x", remark: "")
        }
        // Two steps of topic t make 8 rows, over 6.
        var msg = TransactionRequest(gid: "fan1", transType: "msg")
        msg.steps = [TransStep(action: "topic://t"), TransStep(action: "topic://t")]
        await #expect(throws: DTMError.invalidArgument("the msg expands to 8 branches with its topics' subscribers; the limit is 6")) {
            try await h.coordinator.submit(msg)
        }
        #expect(try await h.status("fan1") == nil)
        msg.steps = [TransStep(action: "topic://t")]
        try await h.coordinator.submit(msg)

        var tcc = TransactionRequest(gid: "reg1", transType: "tcc")
        tcc.options.timeoutToFail = 100
        try await h.coordinator.prepare(tcc)
        for i in 1...3 {
            try await h.coordinator.registerBranch(
                BranchRegistration(gid: "reg1", transType: "tcc", branchID: "0\(i)", data: ["confirm": "c", "cancel": "x"], busiPayload: []))
        }
        await #expect(throws: DTMError.self) {
            try await h.coordinator.registerBranch(
                BranchRegistration(gid: "reg1", transType: "tcc", branchID: "04", data: ["confirm": "c", "cancel": "x"], busiPayload: []))
        }
        #expect(try await h.store.branches(gid: "reg1").count == 6)

        await #expect(throws: DTMError.self) { try await h.coordinator.queryKV(cat: "", key: "") }
        #expect(try await h.coordinator.queryKV(cat: "topics", key: "t").count == 1)
    }

    @Test("retry_limit: above 100 refused at submit; a stored larger value is capped, so a round cannot hammer a branch")
    func retryLimitCap() async throws {
        let h = Harness(config: EngineConfig())
        await #expect(throws: DTMError.invalidArgument("retry_limit is 101; it must be between 0 and 100")) {
            try await h.coordinator.submit(h.saga("rl1", steps: 1) { $0.options.retryLimit = 101 })
        }
        // As an older version could have stored it; the manual clock stands still, so only the cap ends the round.
        var t = GlobalTransaction(gid: "rl2", transType: .saga, status: .submitted, createTime: h.clock.now())
        t.options.retryLimit = Int64.max
        t.nextCronTime = h.clock.now()
        let rows = [
            Branch(gid: "rl2", url: "c1", binData: [], branchID: "01", op: BranchOp.compensate, createTime: h.clock.now()),
            Branch(gid: "rl2", url: "a1", binData: [], branchID: "01", op: BranchOp.action, createTime: h.clock.now()),
        ]
        _ = try await h.store.saveNew(t, branches: rows)
        for _ in 0..<200 { h.caller.script("a1", .error("down")) }
        await h.coordinator.cronOnce()
        #expect(h.caller.calls.filter { $0.url == "a1" }.count == 101)
        #expect(try await h.status("rl2") == .failed)
        // A stored negative retry_count does not buy more retries than the limit.
        t.gid = "rl3"
        t.options.retryLimit = 3
        t.options.retryCount = Int64.min
        _ = try await h.store.saveNew(
            t,
            branches: rows.map {
                var b = $0; b.gid = "rl3"; b.url = b.url == "a1" ? "a3" : "c3"; return b
            })
        for _ in 0..<200 { h.caller.script("a3", .error("down")) }
        await h.coordinator.cronOnce()
        #expect(h.caller.calls.filter { $0.url == "a3" }.count == 4)
    }

    @Test("reserved branch headers stored before they were refused (or by another program) are never sent")
    func storedReservedHeadersDropped() async throws {
        let h = Harness()
        var t = GlobalTransaction(gid: "old-row", transType: .saga, status: .submitted, createTime: h.clock.now())
        t.options.branchHeaders = ["Host": "admin.internal", "X-Keep": "1", "transfer-encoding": "chunked"]
        t.options.waitResult = true
        t.nextCronTime = h.clock.now()
        let branches = [
            Branch(gid: "old-row", url: "c1", binData: [], branchID: "01", op: "compensate", createTime: h.clock.now()),
            Branch(gid: "old-row", url: "a1", binData: [], branchID: "01", op: "action", createTime: h.clock.now()),
        ]
        #expect(try await h.store.saveNew(t, branches: branches) == nil)
        #expect(try await h.coordinator.cronOnce(expireIn: 1) == ["old-row"])
        #expect(h.caller.calls.map(\.headers) == [["X-Keep": "1"]])
    }
}

@Suite("elapsed time")
struct ElapsedTimeTests {
    @Test("whole seconds count: 1.2 s is 1,200 ms and 1.2 s for the metrics; extremes saturate")
    func units() {
        let d = Duration.seconds(1) + .milliseconds(200)
        #expect(d.wholeMilliseconds == 1200)
        #expect(abs(d.secondsValue - 1.2) < 1e-9)
        #expect(Duration.milliseconds(250).wholeMilliseconds == 250)
        #expect(Duration.seconds(Int64.max).wholeMilliseconds == .max)
        #expect(Duration.seconds(Int64.min).wholeMilliseconds == .min)
    }
}

@Suite("due times in whole seconds")
struct WholeSecondUpTests {
    @Test("a due time is rounded up to the whole second, never down; the ends of Int64 do not trap")
    func roundsUp() {
        #expect(Timestamp(microseconds: 1_200_000).wholeSecondUp == Timestamp(microseconds: 2_000_000))
        #expect(Timestamp(microseconds: 2_000_000).wholeSecondUp == Timestamp(microseconds: 2_000_000))
        #expect(Timestamp(microseconds: -1_500_000).wholeSecondUp == Timestamp(microseconds: -1_000_000))
        #expect(Timestamp.distantFuture.wholeSecondUp == .distantFuture)
        #expect(Timestamp.distantPast.wholeSecondUp.microseconds >= Timestamp.distantPast.microseconds)
    }
}
