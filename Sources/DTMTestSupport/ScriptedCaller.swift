import DTMCore
import Synchronization

/// The tests' and harnesses' one scripted branch caller: answers from a script per URL, then from `otherwise`
/// (success unless told), and records every call in order.
public final class ScriptedCaller: BranchCaller {
    public struct Call: Equatable, Sendable {
        public var url: String
        public var branchID: String
        public var op: String
        public var payload: [UInt8]
        public var headers: [String: String]
    }
    private let state = Mutex<(script: [String: [BranchCallResult]], calls: [Call])>(([:], []))
    private let otherwise: @Sendable (BranchCall) -> BranchCallResult

    public init(otherwise: @escaping @Sendable (BranchCall) -> BranchCallResult = { _ in .success }) {
        self.otherwise = otherwise
    }

    /// Queues answers for `url`; once they are used up the URL is answered by `otherwise`.
    public func script(_ url: String, _ results: BranchCallResult...) {
        state.withLock { $0.script[url, default: []] += results }
    }

    public var calls: [Call] { state.withLock { $0.calls } }
    /// "url/op" of every call, in order.
    public var trail: [String] { calls.map { "\($0.url)/\($0.op)" } }

    public func call(_ call: BranchCall) async -> BranchCallResult {
        let scripted = state.withLock { s -> BranchCallResult? in
            s.calls.append(Call(url: call.url, branchID: call.branchID, op: call.op, payload: call.payload, headers: call.headers))
            guard var queue = s.script[call.url], !queue.isEmpty else { return nil }
            let next = queue.removeFirst()
            s.script[call.url] = queue
            return next
        }
        return scripted ?? otherwise(call)
    }
}
