@testable import DTMCore
import DTMTestSupport
import Foundation
import Logging
import Synchronization

/// A clock the test moves by hand.
final class ManualClock: CoordinatorClock {
    private let current = Mutex(Timestamp(seconds: 1_800_000_000))
    func now() -> Timestamp { current.withLock { $0 } }
    func advance(_ seconds: Double) { current.withLock { $0 = $0.adding(seconds: seconds) } }
    func sleep(seconds: Double) async throws { await Task.yield() }
}

/// A branch caller that answers from a script, per URL, and records every call in order.
final class ScriptedCaller: BranchCaller {
    struct Call: Equatable {
        var url: String
        var branchID: String
        var op: String
        var payload: [UInt8]
        var headers: [String: String]
    }
    private let state = Mutex<(script: [String: [BranchCallResult]], calls: [Call])>(([:], []))

    /// Queues answers for `url`; once they are used up the URL answers success.
    func script(_ url: String, _ results: BranchCallResult...) {
        state.withLock { $0.script[url, default: []] += results }
    }

    var calls: [Call] { state.withLock { $0.calls } }
    /// "url/op" of every call, in order.
    var trail: [String] { calls.map { "\($0.url)/\($0.op)" } }

    func call(_ call: BranchCall) async -> BranchCallResult {
        state.withLock { s in
            s.calls.append(Call(url: call.url, branchID: call.branchID, op: call.op, payload: call.payload, headers: call.headers))
            guard var queue = s.script[call.url], !queue.isEmpty else { return .success }
            let next = queue.removeFirst()
            s.script[call.url] = queue
            return next
        }
    }
}

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

    init(config: EngineConfig = EngineConfig()) {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        coordinator = Coordinator(
            context: ProcessingContext(
                store: store, caller: BranchCallRouter(http: caller, grpc: caller), clock: clock, coding: JSONTestCoding(), config: config, logger: logger))
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
