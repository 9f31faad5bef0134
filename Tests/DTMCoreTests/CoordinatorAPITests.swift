@testable import DTMCore
import DTMTestSupport
import Logging
import Synchronization
import Testing

@Suite("coordinator API rules")
struct CoordinatorAPITests {
    @Test("submit of a finished saga is refused with DTM's text")
    func resubmitFinished() async throws {
        let h = Harness()
        try await h.coordinator.submit(h.saga("d1", steps: 1))
        await #expect(throws: DTMError.failure("current status 'succeed', cannot sumbmit.")) {
            try await h.coordinator.submit(h.saga("d1", steps: 1))
        }
        #expect(h.caller.calls.count == 1)
    }

    @Test("prepare is idempotent while prepared, refused otherwise")
    func prepareRules() async throws {
        let h = Harness()
        var r = TransactionRequest(gid: "p1", transType: "tcc")
        try await h.coordinator.prepare(r)
        try await h.coordinator.prepare(r)
        try await h.coordinator.forceStop(gid: "p1")
        await #expect(throws: DTMError.failure("current status 'failed', cannot prepare.")) { try await h.coordinator.prepare(r) }
        r.gid = "p2"
        r.transType = "saga"
        r.steps = [TransStep(action: "a1", compensate: "c1")]
        try await h.coordinator.prepare(r)
        r.options.waitResult = true
        try await h.coordinator.submit(r)
        #expect(try await h.status("p2") == .succeed)
    }

    @Test(
        "bad input names the problem",
        arguments: [
            ("", "saga", "gid is missing or empty"),
            ("a;b", "saga", "gid contains the character ';'"),
            ("a\"b", "saga", "gid contains the character '\"'"),
            ("a\nb", "saga", "gid contains the character 0xa"),
            (String(repeating: "x", count: 129), "saga", "gid is 129 bytes long; the limit is 128"),
            ("ok", "", "trans_type is missing or empty"),
            ("ok", "sagaa", "unknown trans_type 'sagaa'"),
        ])
    func badInput(gid: String, type: String, message: String) async throws {
        let h = Harness()
        var r = TransactionRequest(gid: gid, transType: type)
        r.steps = [TransStep(action: "a1", compensate: "c1")]
        do {
            try await h.coordinator.submit(r)
            Issue.record("accepted bad input")
        } catch let DTMError.invalidArgument(m) {
            #expect(m.hasPrefix(message), "\(m)")
        }
        #expect(h.caller.calls.isEmpty)
    }

    @Test("steps and payloads of different lengths, and too many steps, are refused")
    func stepLimits() async throws {
        var config = EngineConfig()
        config.limits.maxSteps = 5
        let h = Harness(config: config)
        var r = h.saga("m1", steps: 2)
        r.payloads.removeLast()
        await #expect(throws: DTMError.invalidArgument("payloads has 1 entries but steps has 2")) { try await h.coordinator.submit(r) }
        await #expect(throws: DTMError.invalidArgument("6 steps; the limit is 5")) { try await h.coordinator.submit(h.saga("m2", steps: 6)) }
        #expect(try await h.status("m1") == nil)
        #expect(try await h.status("m2") == nil)
    }

    /// Found while fuzzing (Tests/FuzzCorpus/regressions/*/retry-interval-overflow): retry_interval Int64.max
    /// trapped converting the next cron time to microseconds; request_timeout did the same in the branch callers.
    @Test("timeout_to_fail, retry_interval and request_timeout beyond 100 years are refused")
    func optionLimits() async throws {
        let h = Harness()
        for (name, set) in [
            ("timeout_to_fail", { (r: inout TransactionRequest) in r.options.timeoutToFail = .max }),
            ("retry_interval", { (r: inout TransactionRequest) in r.options.retryInterval = .max }),
            ("request_timeout", { (r: inout TransactionRequest) in r.options.requestTimeout = 3_153_600_001 }),
        ] as [(String, (inout TransactionRequest) -> Void)] {
            let r = h.saga("o-\(name)", steps: 1, configure: set)
            await #expect(throws: DTMError.self) { try await h.coordinator.submit(r) }
            await #expect(throws: DTMError.self) { try await h.coordinator.prepare(r) }
            do {
                try await h.coordinator.submit(r)
            } catch let DTMError.invalidArgument(m) {
                #expect(m.hasPrefix("\(name) is ") && m.hasSuffix("the limit is 3153600000"), "\(m)")
            }
            #expect(try await h.status("o-\(name)") == nil)
        }
        #expect(h.caller.calls.isEmpty)
        try await h.coordinator.submit(h.saga("o-ok", steps: 1) { $0.options.retryInterval = 3_153_600_000 })
        #expect(try await h.status("o-ok") == .succeed)
    }

    @Test("legacy step data is the payload when payloads is empty")
    func legacyData() async throws {
        let h = Harness()
        var r = TransactionRequest(gid: "l1", transType: "saga")
        r.steps = [TransStep(action: "a1", compensate: "c1", data: #"{"amount":30}"#)]
        r.options.waitResult = true
        try await h.coordinator.submit(r)
        #expect(h.caller.calls.first?.payload == Array(#"{"amount":30}"#.utf8))
    }

    @Test("forceStop fails an unfinished saga without compensating; refused when finished")
    func forceStop() async throws {
        let h = Harness()
        h.caller.script("a1", .ongoing("ONGOING"))
        try? await h.coordinator.submit(h.saga("fs", steps: 1))
        try await h.coordinator.forceStop(gid: "fs")
        #expect(try await h.status("fs") == .failed)
        #expect(h.caller.trail == ["a1/action"])
        await #expect(throws: DTMError.failure("global transaction force stop error. status: failed. error:")) {
            try await h.coordinator.forceStop(gid: "fs")
        }
    }

    @Test("abort: sagas cannot be aborted; unknown gids are an error")
    func abortRules() async throws {
        let h = Harness()
        h.caller.script("a1", .ongoing("ONGOING"))
        try? await h.coordinator.submit(h.saga("ab", steps: 1))
        var r = TransactionRequest(gid: "ab", transType: "saga")
        await #expect(throws: DTMError.failure("trans type: 'saga' current status 'submitted', cannot abort.")) { try await h.coordinator.abort(r) }
        r.gid = "nope"
        await #expect(throws: DTMError.other("no TransGlobal with gid: nope found")) { try await h.coordinator.abort(r) }
    }

    @Test("registerBranch needs a prepared global transaction")
    func registerBranch() async throws {
        let h = Harness()
        let reg = BranchRegistration(gid: "rb", transType: "tcc", branchID: "01", data: ["confirm": "cf", "cancel": "cn"], busiPayload: [1])
        await #expect(throws: DTMError.failure("no trans with gid: rb status: prepared found")) { try await h.coordinator.registerBranch(reg) }
        try await h.coordinator.prepare(TransactionRequest(gid: "rb", transType: "tcc"))
        try await h.coordinator.registerBranch(reg)
        let rows = try await h.store.branches(gid: "rb")
        #expect(rows.map(\.op) == ["cancel", "confirm"])
        #expect(rows.map(\.url) == ["cn", "cf"])
        await #expect(throws: DTMError.self) { try await h.coordinator.registerBranch(reg) }
    }

    @Test("resetNextCronTime brings a backed-off transaction forward")
    func resetNextCronTime() async throws {
        let h = Harness()
        h.caller.script("a1", .error("down"))
        try? await h.coordinator.submit(h.saga("rn", steps: 1))
        #expect(await h.coordinator.cronOnce().isEmpty)
        try await h.coordinator.resetNextCronTime(gid: "rn")
        #expect(await h.coordinator.cronOnce() == ["rn"])
        #expect(try await h.status("rn") == .succeed)
    }

    @Test("resetCronTime moves far-future transactions to now and reports the count")
    func resetCronTime() async throws {
        let h = Harness()
        for i in 0..<3 {
            h.caller.script("a1", .error("down"))
            try? await h.coordinator.submit(h.saga("rc\(i)", steps: 1))
        }
        let (count, remaining) = try await h.coordinator.resetCronTime(timeout: 5, limit: 2)
        #expect(count == 2)
        #expect(remaining)
        #expect(await h.coordinator.cronOnce().count == 2)
    }

    @Test("gids are 22 characters of DTM's base-57 alphabet and unique")
    func gids() {
        let h = Harness()
        let gids = (0..<1000).map { _ in h.coordinator.newGid() }
        #expect(Set(gids).count == 1000)
        #expect(gids.allSatisfy { $0.count == 22 && $0.allSatisfy { "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz".contains($0) } })
    }

    @Test("schedule policy: reset interval rules")
    func resetInterval() {
        let c = EngineConfig()
        var o = TransOptions()
        #expect(c.resetInterval(for: o) == 10)
        o.timeoutToFail = 5
        #expect(c.resetInterval(for: o) == 5)
        o.retryInterval = 3
        #expect(c.resetInterval(for: o) == 3)
    }
}

@Suite("coordinator: concurrent rounds of one gid")
struct ConcurrentRoundTests {
    /// A caller whose first call waits until released, so a round stays in flight.
    final class GateCaller: BranchCaller {
        let released = Mutex(false)
        let entered = Mutex(0)
        func call(_ call: BranchCall) async -> BranchCallResult {
            entered.withLock { $0 += 1 }
            while !released.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(2)) }
            return .success
        }
    }

    @Test("a wait_result submit that finds a round of its gid running reports the stored status, not success")
    func busyGid() async throws {
        let gate = GateCaller()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let store = InMemoryStore()
        let coordinator = Coordinator(
            context: ProcessingContext(
                store: store, caller: BranchCallRouter(http: gate, grpc: gate), clock: ManualClock(), coding: JSONTestCoding(), config: EngineConfig(),
                logger: logger))
        var r = TransactionRequest(gid: "busy", transType: "saga")
        r.steps = [TransStep(action: "a1", compensate: "c1")]
        try await coordinator.submit(r)  // background round, blocked in the branch call
        while gate.entered.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(2)) }
        r.options.waitResult = true
        await #expect(throws: DTMError.failure("wait result not return success:")) { try await coordinator.submit(r) }
        #expect(gate.entered.withLock { $0 } == 1, "the second submit did not start a second round")
        gate.released.withLock { $0 = true }
    }
}

@Suite("cron loop")
struct CronLoopTests {
    /// Blocks every call to the URL "slow" until released; answers success to everything else.
    final class SlowCaller: BranchCaller {
        let released = Mutex(false)
        let calls = Mutex<[String]>([])
        func call(_ call: BranchCall) async -> BranchCallResult {
            calls.withLock { $0.append(call.gid) }
            if call.url == "slow" { while !released.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(2)) } }
            return .success
        }
    }

    @Test("runCron: a round stuck on a slow branch does not hold up transactions that fall due later")
    func pipelined() async throws {
        let caller = SlowCaller()
        let clock = ManualClock()
        var config = EngineConfig()
        config.cronConcurrency = 2
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let store = InMemoryStore()
        let coordinator = Coordinator(
            context: ProcessingContext(
                store: store, caller: BranchCallRouter(http: caller, grpc: caller), clock: clock, coding: JSONTestCoding(), config: config, logger: logger))
        func stored(_ gid: String, action: String) async throws {
            var r = TransactionRequest(gid: gid, transType: "saga")
            r.steps = [TransStep(action: action, compensate: "")]
            let (t, b) = try coordinator.makeTransaction(r, status: .submitted)
            _ = try await store.saveNew(t, branches: b)
        }
        try await stored("stuck", action: "slow")
        clock.advance(11)
        let cron = Task { await coordinator.runCron() }
        defer { cron.cancel() }
        func waitFor(_ gid: String) async -> Bool {
            for _ in 0..<2000 {
                if (try? await store.transaction(gid: gid))?.status == .succeed { return true }
                try? await Task.sleep(for: .milliseconds(2))
            }
            return false
        }
        while caller.calls.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(2)) }
        try await stored("later", action: "fast")
        clock.advance(11)
        coordinator.cronWake.signal()
        #expect(await waitFor("later"), "processed while 'stuck' is still in its round")
        #expect(try await store.transaction(gid: "stuck")?.status == .submitted)
        caller.released.withLock { $0 = true }
        #expect(await waitFor("stuck"))
    }
}

@Suite("retention")
struct RetentionTests {
    @Test("sweepFinished deletes finished transactions older than FinishedDataExpire, batch after batch; 0 keeps everything")
    func sweep() async throws {
        let h = Harness()
        for i in 0..<7 { try await h.coordinator.submit(h.saga("old\(i)", steps: 1)) }
        try await h.coordinator.prepare(TransactionRequest(gid: "open", transType: "tcc"))
        h.clock.advance(100)
        try await h.coordinator.submit(h.saga("young", steps: 1))
        #expect(await h.coordinator.sweepFinished(finishedDataExpire: 0) == 0)
        #expect(try await h.status("old0") == .succeed)
        #expect(await h.coordinator.sweepFinished(finishedDataExpire: 50, batch: 3) == 7)
        for i in 0..<7 { #expect(try await h.store.transaction(gid: "old\(i)") == nil) }
        #expect(try await h.store.branches(gid: "old0").isEmpty)
        #expect(try await h.status("open") == .prepared, "unfinished transactions are kept however old")
        #expect(try await h.status("young") == .succeed)
    }
}

@Suite("attention")
struct AttentionTests {
    @Test("attention lists unfinished transactions retried beyond AlertRetryLimit or overdue, with the last branch error")
    func attention() async throws {
        var config = EngineConfig()
        config.alertRetryLimit = 1
        let h = Harness(config: config)
        h.caller.script("a2", .error("HTTP 500: inventory down"), .error("HTTP 500: inventory down"))
        _ = try? await h.coordinator.submit(h.saga("retried", steps: 2))  // answers "not success": the branch errs
        try await h.coordinator.submit(h.saga("fine", steps: 1))
        // One back-off (interval 20 = 10 × 2¹): not beyond the limit of 1 yet, and not overdue.
        #expect(try await h.coordinator.attention(limit: 10).isEmpty)
        h.clock.advance(25)
        await h.coordinator.cronOnce()
        // Two back-offs now.
        let items = try await h.coordinator.attention(limit: 10)
        #expect(items.map(\.transaction.gid) == ["retried"])
        #expect(items.first?.retries == 2)
        #expect(items.first?.lastError.contains("a2") == true && items.first?.lastError.contains("inventory down") == true)
        // Overdue: due for longer than RetryInterval, whatever the retries.
        h.clock.advance(1000)
        #expect(try await h.coordinator.attention(limit: 10).first?.overdue == true)
        // A row another program stored with numbers at Int64's ends is counted, not a trap.
        var extreme = GlobalTransaction(gid: "extreme", transType: .saga, status: .submitted, createTime: Timestamp(microseconds: 0))
        extreme.options.retryInterval = .max
        extreme.nextCronInterval = .max
        extreme.nextCronTime = .distantPast
        _ = try await h.store.saveNew(extreme, branches: [])
        var tiny = extreme
        tiny.gid = "tiny-base"
        tiny.options.retryInterval = 1
        _ = try await h.store.saveNew(tiny, branches: [])
        let levels = try await h.coordinator.attention(limit: 10).reduce(into: [String: Int]()) { $0[$1.transaction.gid] = $1.retries }
        #expect(levels["extreme"] == 0 && levels["tiny-base"] == 62, "\(levels)")
    }
}
