@testable import DTMCore
import DTMTestSupport
import Logging
import Synchronization
import Testing

/// `UpdateBranchSync`: when a branch's new status reaches the store, seen from the branches themselves.
@Suite("branch status writes (UpdateBranchSync)")
struct BranchUpdateSyncTests {
    /// Answers success and notes, at each call, the branch statuses stored at that moment (p, s, f per row).
    final class StoreWatchingCaller: BranchCaller {
        let store: InMemoryStore
        private let seen = Mutex<[String]>([])
        init(store: InMemoryStore) { self.store = store }
        var trail: [String] { seen.withLock { $0 } }

        func call(_ call: BranchCall) async -> BranchCallResult {
            let rows = (try? await store.branches(gid: call.gid)) ?? []
            let stored = rows.map { String($0.status.rawValue.prefix(1)) }.joined()
            seen.withLock { $0.append("\(call.url) sees \(stored)") }
            return call.url == "fail" ? .failure("no") : .success
        }
    }

    func run(sync: Bool, steps: [TransStep]) async throws -> (trail: [String], stored: String, status: GlobalStatus?) {
        let store = InMemoryStore()
        let caller = StoreWatchingCaller(store: store)
        var config = EngineConfig()
        config.updateBranchSync = sync
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let coordinator = Coordinator(
            context: ProcessingContext(
                store: store, caller: BranchCallRouter(http: caller, grpc: caller), clock: ManualClock(), coding: JSONTestCoding(), config: config,
                logger: logger))
        var request = TransactionRequest(gid: "g", transType: "saga")
        request.steps = steps
        request.options.waitResult = true
        try? await coordinator.submit(request)
        let stored = try await store.branches(gid: "g").map { String($0.status.rawValue.prefix(1)) }.joined()
        return (caller.trail, stored, try await store.transaction(gid: "g")?.status)
    }

    @Test("1 (DTM's default): each answered step is stored before the next call; the last with the final status")
    func synchronous() async throws {
        let r = try await run(
            sync: true,
            steps: [TransStep(action: "a1", compensate: "c1"), TransStep(action: "a2", compensate: "c2"), TransStep(action: "a3", compensate: "c3")])
        #expect(r.trail == ["a1 sees pppppp", "a2 sees pspppp", "a3 sees pspspp"])
        #expect(r.stored == "pspsps")
        #expect(r.status == .succeed)
    }

    @Test("1: a failed step and the compensations are each stored before the next call")
    func synchronousCompensation() async throws {
        let r = try await run(sync: true, steps: [TransStep(action: "a1", compensate: "c1"), TransStep(action: "fail", compensate: "c2")])
        #expect(r.trail == ["a1 sees pppp", "fail sees pspp", "c2 sees pspf", "c1 sees pssf"])
        #expect(r.stored == "sssf")
        #expect(r.status == .failed)
    }

    @Test("0: the round's statuses are stored with its status changes, none before the next call")
    func batched() async throws {
        let r = try await run(
            sync: false,
            steps: [TransStep(action: "a1", compensate: "c1"), TransStep(action: "a2", compensate: "c2"), TransStep(action: "a3", compensate: "c3")])
        #expect(r.trail == ["a1 sees pppppp", "a2 sees pppppp", "a3 sees pppppp"])
        #expect(r.stored == "pspsps")
        #expect(r.status == .succeed)
    }

    @Test("0: a failure stores the answered steps with `aborting`, before the compensations are called")
    func batchedCompensation() async throws {
        let r = try await run(sync: false, steps: [TransStep(action: "a1", compensate: "c1"), TransStep(action: "fail", compensate: "c2")])
        #expect(r.trail == ["a1 sees pppp", "fail sees pppp", "c2 sees pspf", "c1 sees pspf"])
        #expect(r.stored == "sssf")
        #expect(r.status == .failed)
    }
}

/// What must be on disk before what (README, Performance): a round's writes are ordered, and only the final status of
/// a round a client waits for is durable; submit's save is durable by the store's contract.
@Suite("write durability of a round")
struct WriteDurabilityTests {
    @Test("a 2-step saga: without wait_result every round write is ordered; with it the final status is durable")
    func sagaWrites() async throws {
        let background = Harness()
        try await background.coordinator.submit(background.saga("w1", steps: 2, waitResult: false))
        for _ in 0..<500 where try await background.status("w1") != .succeed { try await Task.sleep(for: .milliseconds(5)) }
        #expect(background.store.roundWrites == ["updateBranches ordered", "changeStatus ordered"])

        let waiting = Harness()
        try await waiting.coordinator.submit(waiting.saga("w2", steps: 2, waitResult: true))
        #expect(waiting.store.roundWrites == ["updateBranches ordered", "changeStatus durable"])
    }

    @Test("a back-off by the cron loop is ordered, and so is the status that ends it: no client waits")
    func cronWrites() async throws {
        let h = Harness()
        h.caller.script("a1", .error("refused"))
        try await h.coordinator.submit(h.saga("w3", steps: 1, waitResult: false))
        for _ in 0..<500 where h.store.roundWrites.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        h.clock.advance(3600)
        #expect(await h.coordinator.cronOnce() == ["w3"])
        #expect(try await h.status("w3") == .succeed)
        #expect(h.store.roundWrites.allSatisfy { $0.hasSuffix("ordered") }, "\(h.store.roundWrites)")
    }
}
