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
