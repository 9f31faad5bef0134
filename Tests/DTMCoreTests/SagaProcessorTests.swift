@testable import DTMCore
import Testing

@Suite("saga processor")
struct SagaProcessorTests {
    @Test("saga: two steps succeed in order, no compensation")
    func success() async throws {
        let h = Harness()
        try await h.coordinator.submit(h.saga("s1", steps: 2))
        #expect(h.caller.trail == ["a1/action", "a2/action"])
        #expect(h.caller.calls.map(\.branchID) == ["01", "02"])
        #expect(h.caller.calls.map(\.payload) == [Array("p1".utf8), Array("p2".utf8)])
        #expect(try await h.status("s1") == .succeed)
        #expect(try await h.branchStatuses("s1") == "psps")
        #expect(try await h.store.transaction(gid: "s1")?.finishTime != nil)
    }

    @Test("saga: FAILURE at step k compensates k, k-1, …, 1", arguments: [1, 2, 3])
    func failureAtStep(k: Int) async throws {
        let h = Harness()
        h.caller.script("a\(k)", .failure("reason:no money"))
        await #expect(throws: DTMError.self) { try await h.coordinator.submit(h.saga("f\(k)", steps: 3)) }
        let actions = (1...k).map { "a\($0)/action" }
        let compensations = stride(from: k, through: 1, by: -1).map { "c\($0)/compensate" }
        #expect(h.caller.trail == actions + compensations)
        let t = try #require(try await h.store.transaction(gid: "f\(k)"))
        #expect(t.status == .failed)
        #expect(t.rollbackReason == "url:a\(k) return failed: reason:no money FAILURE")
        #expect(t.rollbackTime != nil)
        // Steps before k: both rows succeed; step k: compensate succeed, action failed; later: untouched.
        let expected = String(repeating: "ss", count: k - 1) + "sf" + String(repeating: "pp", count: 3 - k)
        #expect(try await h.branchStatuses("f\(k)") == expected)
    }

    @Test("saga: wait_result failure answers FAILURE with the rollback reason")
    func waitResultFailure() async throws {
        let h = Harness()
        h.caller.script("a2", .failure("no stock"))
        do {
            try await h.coordinator.submit(h.saga("w1", steps: 2))
            Issue.record("submit should have failed")
        } catch let DTMError.failure(message) {
            #expect(message == "url:a2 return failed: no stock FAILURE")
        }
    }

    @Test("saga: ONGOING keeps the interval, the cron loop finishes it later")
    func ongoingThenSuccess() async throws {
        let h = Harness()
        h.caller.script("a2", .ongoing("ONGOING"))
        await #expect(throws: DTMError.failure("wait result not return success:")) {
            try await h.coordinator.submit(h.saga("o1", steps: 2))
        }
        var t = try #require(try await h.store.transaction(gid: "o1"))
        #expect(t.status == .submitted)
        #expect(t.nextCronInterval == 10)
        #expect(t.nextCronTime == h.clock.now().adding(seconds: 10))
        #expect(await h.coordinator.cronOnce().isEmpty, "not due before its next cron time")

        h.clock.advance(10.5)
        #expect(await h.coordinator.cronOnce() == ["o1"])
        t = try #require(try await h.store.transaction(gid: "o1"))
        #expect(t.status == .succeed)
        #expect(h.caller.trail == ["a1/action", "a2/action", "a2/action"])
    }

    @Test("saga: an error backs off 10, 20, 40 s; success afterwards resets the interval")
    func errorBacksOff() async throws {
        let h = Harness()
        h.caller.script("a1", .error("connection refused"), .error("connection refused"), .error("status 500"))
        try? await h.coordinator.submit(h.saga("b1", steps: 1))
        #expect(try await h.store.transaction(gid: "b1")?.nextCronInterval == 20)
        h.clock.advance(20.5)
        #expect(await h.coordinator.cronOnce() == ["b1"])
        #expect(try await h.store.transaction(gid: "b1")?.nextCronInterval == 40)
        h.clock.advance(40.5)
        await h.coordinator.cronOnce()
        let t = try #require(try await h.store.transaction(gid: "b1"))
        #expect(t.nextCronInterval == 80)
        #expect(t.nextCronTime == h.clock.now().adding(seconds: 80))
        #expect(t.status == .submitted)
        h.clock.advance(80.5)
        await h.coordinator.cronOnce()
        let done = try #require(try await h.store.transaction(gid: "b1"))
        #expect(done.status == .succeed)
        #expect(done.nextCronInterval == 10, "a success after back-off resets the interval")
        #expect(h.caller.calls.count == 4)
    }

    @Test("saga: concurrent with orders runs step 3 only after steps 1 and 2 succeeded")
    func concurrentOrders() async throws {
        let h = Harness()
        try await h.coordinator.submit(h.saga("c1", steps: 3, customData: #"{"orders":{"2":[0,1]},"concurrent":true}"#))
        let trail = h.caller.trail
        #expect(Set(trail.prefix(2)) == ["a1/action", "a2/action"])
        #expect(trail.last == "a3/action")
        #expect(try await h.status("c1") == .succeed)
    }

    @Test("saga: concurrent failure compensates dependants before their prerequisites")
    func concurrentFailure() async throws {
        let h = Harness()
        h.caller.script("a3", .failure("nope"))
        try? await h.coordinator.submit(h.saga("c2", steps: 3, customData: #"{"orders":{"2":[0,1]},"concurrent":true}"#))
        let trail = h.caller.trail
        #expect(trail.count == 6)
        #expect(trail[3] == "c3/compensate", "the failed step is compensated first")
        #expect(Set(trail.suffix(2)) == ["c1/compensate", "c2/compensate"])
        #expect(try await h.status("c2") == .failed)
        #expect(try await h.branchStatuses("c2") == "sssssf")
    }

    @Test("saga: a sequential saga without custom_data never runs two actions at once")
    func sequentialIsSequential() async throws {
        let h = Harness()
        h.caller.script("a1", .ongoing("ONGOING"))
        try? await h.coordinator.submit(h.saga("q1", steps: 3))
        #expect(h.caller.trail == ["a1/action"], "step 2 waits for step 1")
    }

    @Test("saga: retry_limit retries at once, then aborts and compensates what may have run")
    func retryLimit() async throws {
        let h = Harness()
        h.caller.script("a2", .error("e1"), .error("e2"), .error("e3"))
        try? await h.coordinator.submit(h.saga("r1", steps: 2) { $0.options.retryLimit = 2 })
        #expect(h.caller.trail == ["a1/action", "a2/action", "a2/action", "a2/action", "c2/compensate", "c1/compensate"])
        let t = try #require(try await h.store.transaction(gid: "r1"))
        #expect(t.status == .failed)
        #expect(t.rollbackReason == "RetryCount is greater than RetryLimit, RetryLimit: 2")
    }

    @Test("saga: retry_limit exhausted on step 1 compensates step 1 only; step 2 never ran")
    func retryLimitFirstStep() async throws {
        let h = Harness()
        h.caller.script("a1", .error("e1"), .error("e2"))
        try? await h.coordinator.submit(h.saga("r3", steps: 2) { $0.options.retryLimit = 1 })
        #expect(h.caller.trail == ["a1/action", "a1/action", "c1/compensate"])
        #expect(try await h.status("r3") == .failed)
    }

    @Test("saga: retry_limit not exhausted lets the action succeed in the same round")
    func retryLimitRecovers() async throws {
        let h = Harness()
        h.caller.script("a1", .ongoing("ONGOING"))
        try await h.coordinator.submit(h.saga("r2", steps: 1) { $0.options.retryLimit = 3 })
        #expect(h.caller.trail == ["a1/action", "a1/action"])
        #expect(try await h.status("r2") == .succeed)
    }

    @Test("saga: timeout_to_fail aborts a stuck saga and compensates")
    func timeout() async throws {
        let h = Harness()
        h.caller.script("a2", .ongoing("ONGOING"), .ongoing("ONGOING"))
        try? await h.coordinator.submit(h.saga("t1", steps: 2) { $0.options.timeoutToFail = 5 })
        #expect(try await h.status("t1") == .submitted)
        h.clock.advance(6)
        #expect(await h.coordinator.cronOnce() == ["t1"])
        let t = try #require(try await h.store.transaction(gid: "t1"))
        #expect(t.status == .failed)
        #expect(t.rollbackReason == "Timeout after 5 seconds")
        // a2 answered ONGOING and may have run: it is compensated too, then step 1.
        #expect(h.caller.trail == ["a1/action", "a2/action", "c2/compensate", "c1/compensate"])
    }

    @Test("saga: a compensation that errors leaves the saga aborting; cron finishes it")
    func compensationRetried() async throws {
        let h = Harness()
        h.caller.script("a2", .failure("no"))
        h.caller.script("c1", .error("down"))
        try? await h.coordinator.submit(h.saga("k1", steps: 2))
        #expect(try await h.status("k1") == .aborting)
        h.clock.advance(25)
        await h.coordinator.cronOnce()
        #expect(try await h.status("k1") == .failed)
        #expect(h.caller.trail == ["a1/action", "a2/action", "c2/compensate", "c1/compensate", "c1/compensate"])
    }

    @Test("saga: FAILURE from a compensation is retried, never final")
    func compensationFailureRetried() async throws {
        let h = Harness()
        h.caller.script("a1", .failure("no"))
        h.caller.script("c1", .failure("still no"))
        try? await h.coordinator.submit(h.saga("k2", steps: 1))
        #expect(try await h.status("k2") == .aborting)
        #expect(try await h.store.transaction(gid: "k2")?.nextCronInterval == 20)
    }

    @Test("saga: an empty action or compensation URL counts as success without a call")
    func emptyURL() async throws {
        let h = Harness()
        var r = h.saga("e1", steps: 2)
        r.steps[0].action = ""
        try await h.coordinator.submit(r)
        #expect(h.caller.trail == ["a2/action"])
        #expect(try await h.branchStatuses("e1") == "psps")
    }

    @Test("saga: branch_headers and request_timeout reach the branch call")
    func headersAndTimeout() async throws {
        let h = Harness()
        try await h.coordinator.submit(
            h.saga("h1", steps: 1) {
                $0.options.branchHeaders = ["test_header": "yes"]
                $0.options.requestTimeout = 7
            })
        #expect(h.caller.calls.first?.headers == ["test_header": "yes"])
    }

    @Test("saga: after a crash before processing, the cron loop drives it to the end")
    func cronPickUpAfterCrash() async throws {
        let h = Harness()
        // What a crash leaves behind: the transaction stored and acknowledged, no round ever ran.
        let (t, branches) = try h.coordinator.makeTransaction(h.saga("x1", steps: 2, waitResult: false), status: .submitted)
        _ = try await h.store.saveNew(t, branches: branches)
        #expect(await h.coordinator.cronOnce().isEmpty)
        h.clock.advance(10.5)
        #expect(await h.coordinator.cronOnce() == ["x1"])
        #expect(try await h.status("x1") == .succeed)
        #expect(h.caller.trail == ["a1/action", "a2/action"])
        // A finished transaction is never claimed again.
        h.clock.advance(100)
        #expect(await h.coordinator.cronOnce().isEmpty)
    }

    @Test("saga: after a crash mid-saga the cron loop resumes from the first unfinished step")
    func cronResumesMidSaga() async throws {
        let h = Harness()
        let (t, branches) = try h.coordinator.makeTransaction(h.saga("x2", steps: 3, waitResult: false), status: .submitted)
        _ = try await h.store.saveNew(t, branches: branches)
        try await h.store.updateBranches(
            gid: "x2", requiring: .submitted, updates: [BranchStatusUpdate(branchID: "01", op: "action", status: .succeed, finishTime: h.clock.now())],
            now: h.clock.now())
        h.clock.advance(11)
        await h.coordinator.cronOnce()
        #expect(h.caller.trail == ["a2/action", "a3/action"])
        #expect(try await h.status("x2") == .succeed)
    }

    @Test("saga: the cron claim is a lease: a claimed transaction is not claimed again before it expires")
    func claimLease() async throws {
        let h = Harness()
        h.caller.script("a1", .ongoing("ONGOING"), .ongoing("ONGOING"))
        try? await h.coordinator.submit(h.saga("l1", steps: 1))
        h.clock.advance(10.5)
        #expect(await h.coordinator.cronOnce() == ["l1"])
        #expect(await h.coordinator.cronOnce().isEmpty)
    }
}
