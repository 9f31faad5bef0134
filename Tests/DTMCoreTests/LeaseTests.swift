@testable import DTMCore
import DTMTestSupport
import Logging
import Synchronization
import Testing

/// A caller that looks at the stored lease of the transaction at the moment each call starts, and may act as a
/// second coordinator in the middle of a call.
private final class LeaseProbeCaller: BranchCaller {
    struct Seen: Equatable {
        var url: String
        var owner: String
        var leaseLeft: Double
    }
    let store: InMemoryStore
    let clock: ManualClock
    private let state = Mutex<(seen: [Seen], during: [String: @Sendable () async -> Void])>(([], [:]))

    init(store: InMemoryStore, clock: ManualClock) {
        self.store = store
        self.clock = clock
    }

    var seen: [Seen] { state.withLock { $0.seen } }

    /// Runs `action` while the call to `url` is in progress.
    func during(_ url: String, _ action: @escaping @Sendable () async -> Void) { state.withLock { $0.during[url] = action } }

    func call(_ call: BranchCall) async -> BranchCallResult {
        let stored = try? await store.transaction(gid: call.gid)
        let left = stored?.nextCronTime.map { $0.seconds(since: clock.now()) } ?? -1
        let action = state.withLock { s in
            s.seen.append(Seen(url: call.url, owner: stored?.owner ?? "", leaseLeft: left))
            return s.during.removeValue(forKey: call.url)
        }
        await action?()
        return .success
    }
}

@Suite("leases: one caller per branch op")
struct LeaseTests {
    private struct Setup {
        let store = InMemoryStore()
        let clock = ManualClock()
        let caller: LeaseProbeCaller
        let coordinator: Coordinator
        let owner = "this-coordinator"

        init(config: EngineConfig = EngineConfig()) {
            caller = LeaseProbeCaller(store: store, clock: clock)
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            coordinator = Coordinator(
                context: ProcessingContext(
                    store: store, caller: BranchCallRouter(http: caller, grpc: caller), clock: clock, coding: JSONTestCoding(), config: config,
                    logger: logger, leaseOwner: owner))
        }

        func saga(_ gid: String, retryInterval: Int64, requestTimeout: Int64 = 0) -> TransactionRequest {
            var r = TransactionRequest(gid: gid, transType: "saga")
            r.steps = [TransStep(action: "a1", compensate: "c1"), TransStep(action: "a2", compensate: "c2")]
            r.payloads = [[], []]
            r.options.waitResult = true
            r.options.retryInterval = retryInterval
            r.options.requestTimeout = requestTimeout
            return r
        }
    }

    @Test("a lease shorter than a call's timeout is renewed, in this coordinator's name, before the call starts")
    func renewedBeforeEachCall() async throws {
        let s = Setup()
        // retry_interval 1 leases the saved transaction for 1 s; each call may last 20 s.
        try await s.coordinator.submit(s.saga("short", retryInterval: 1, requestTimeout: 20))
        #expect(s.caller.seen.map(\.url) == ["a1", "a2"])
        for seen in s.caller.seen {
            #expect(seen.owner == s.owner)
            #expect(seen.leaseLeft >= 20 + EngineConfig().leaseMargin, "lease left when \(seen.url) started: \(seen.leaseLeft) s")
        }
        #expect(try await s.store.transaction(gid: "short")?.status == .succeed)
    }

    @Test("a lease that already covers the call is not written again (no extra commit with the defaults)")
    func noRenewalWhenCovered() async throws {
        let s = Setup()
        try await s.coordinator.submit(s.saga("default", retryInterval: 0))  // RetryInterval 10 s covers 3 s + margin
        #expect(s.caller.seen.map(\.url) == ["a1", "a2"])
        #expect(s.caller.seen.allSatisfy { $0.owner.isEmpty && $0.leaseLeft >= 3 + EngineConfig().leaseMargin })
    }

    @Test("a round whose lease another coordinator took starts no further call and writes no schedule")
    func lostLeaseStopsTheRound() async throws {
        let s = Setup()
        let store = s.store
        let clock = s.clock
        // While a1 runs, the lease runs out (the clock jumps past it) and another coordinator claims the saga.
        s.caller.during("a1") {
            clock.advance(60)
            let now = clock.now()
            _ = try? await store.claimDue(dueBefore: now, leaseUntil: now.adding(seconds: 30), owner: "other", limit: 10, now: now)
        }
        await #expect(throws: DTMError.self) { try await s.coordinator.submit(s.saga("taken", retryInterval: 1, requestTimeout: 5)) }
        #expect(s.caller.seen.map(\.url) == ["a1"], "a2 must not be called by a round that lost its lease")
        let t = try #require(try await store.transaction(gid: "taken"))
        #expect(t.owner == "other")
        #expect(t.nextCronTime == clock.now().adding(seconds: 30), "the other coordinator's lease is left as it was")
        #expect(t.status == .submitted)
    }

    @Test("the cron loop claims in this process's name, so its claim does not take the lease from a round running here")
    func cronClaimsWithTheProcessOwner() async throws {
        let s = Setup()
        var request = s.saga("cron", retryInterval: 1, requestTimeout: 5)
        request.options.waitResult = false
        try await s.coordinator.prepare(request)
        try await s.store.changeStatus(gid: "cron", from: .prepared, to: .submitted, change: StatusChange(), now: s.clock.now())
        s.clock.advance(2)
        #expect(try await s.coordinator.cronOnce() == ["cron"])
        #expect(s.caller.seen.map(\.url) == ["a1", "a2"])
        #expect(s.caller.seen.allSatisfy { $0.owner == s.owner })
        #expect(try await s.store.transaction(gid: "cron")?.status == .succeed)
    }
}
