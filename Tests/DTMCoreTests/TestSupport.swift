@testable import DTMCore
import DTMTestSupport
import Foundation
import Logging
import Synchronization

struct JSONTestCoding: TextCoding {
    func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }
    func encode<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }
}

/// A coordinator over an in-memory store, a scripted caller and a manual clock.
struct Harness {
    let store = InMemoryStore()
    let caller = ScriptedCaller()
    let clock = ManualClock()
    let coordinator: Coordinator

    init(config: EngineConfig = EngineConfig(), tracer: (any TransactionTracer)? = nil) {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        coordinator = Coordinator(
            context: ProcessingContext(
                store: store, caller: BranchCallRouter(http: caller, grpc: caller), clock: clock, coding: JSONTestCoding(), config: config, logger: logger,
                tracer: tracer))
    }

    /// A saga request whose step i has action "a<i>" and compensation "c<i>" (i from 1), payload "p<i>".
    func saga(
        _ gid: String, steps: Int, waitResult: Bool = true, customData: String = "", configure: (inout TransactionRequest) -> Void = { _ in }
    ) -> TransactionRequest {
        var r = TransactionRequest(gid: gid, transType: "saga")
        r.steps = (1...steps).map { TransStep(action: "a\($0)", compensate: "c\($0)") }
        r.payloads = (1...steps).map { Array("p\($0)".utf8) }
        r.customData = customData
        r.options.waitResult = waitResult
        configure(&r)
        return r
    }

    func status(_ gid: String) async throws -> GlobalStatus? { try await store.transaction(gid: gid)?.status }

    /// Branch statuses in stored order, as letters: p, s, f.
    func branchStatuses(_ gid: String) async throws -> String {
        try await store.branches(gid: gid).map { String($0.status.rawValue.prefix(1)) }.joined()
    }
}
