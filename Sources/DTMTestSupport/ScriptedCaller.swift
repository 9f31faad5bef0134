package import DTMCore
import Synchronization

/// The tests' and harnesses' one scripted branch caller: answers from a script per URL, then from `otherwise`
/// (success unless told), and records every call in order.
package final class ScriptedCaller: BranchCaller {
    package struct Call: Equatable, Sendable {
        package var url: String
        package var branchID: String
        package var op: String
        package var payload: [UInt8]
        package var headers: [String: String]
        /// The span context the call carried (while tracing).
        package var trace: TraceHeaders?
    }
    private let state = Mutex<(script: [String: [BranchCallResult]], calls: [Call])>(([:], []))
    private let otherwise: @Sendable (BranchCall) -> BranchCallResult

    package init(otherwise: @escaping @Sendable (BranchCall) -> BranchCallResult = { _ in .success }) {
        self.otherwise = otherwise
    }

    /// Queues answers for `url`; once they are used up the URL is answered by `otherwise`.
    package func script(_ url: String, _ results: BranchCallResult...) {
        state.withLock { $0.script[url, default: []] += results }
    }

    package var calls: [Call] { state.withLock { $0.calls } }
    /// "url/op" of every call, in order.
    package var trail: [String] { calls.map { "\($0.url)/\($0.op)" } }

    package func call(_ call: BranchCall) async -> BranchCallResult {
        let scripted = state.withLock { s -> BranchCallResult? in
            s.calls.append(Call(url: call.url, branchID: call.branchID, op: call.op, payload: call.payload, headers: call.headers, trace: call.trace))
            guard var queue = s.script[call.url], !queue.isEmpty else { return nil }
            let next = queue.removeFirst()
            s.script[call.url] = queue
            return next
        }
        return scripted ?? otherwise(call)
    }
}
