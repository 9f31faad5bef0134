import DTMCore
import DTMTestSupport
import DTMHTTP
import Dispatch
import Logging
import Synchronization

/// What the request harnesses share: a fixed clock, a branch caller answering from the URL, an in-memory
/// coordinator without background rounds, and the record format of their inputs.
enum Fixtures {
    static let quiet = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

    /// The clock of a harness: still until moved; a sleeper is cancelled, so nothing loops.
    static func clock() -> ManualClock { ManualClock(Timestamp(microseconds: 1_700_000_000_000_000), sleepCancels: true) }

    /// …fail… answers FAILURE, …ongoing… ONGOING, …err… an error, anything else SUCCESS.
    static func answerFromURL(_ call: BranchCall) -> BranchCallResult {
        if call.url.contains("fail") { return .failure("FAILURE") }
        if call.url.contains("ongoing") { return .ongoing("ONGOING") }
        if call.url.contains("err") { return .error("branch error") }
        return .success
    }

    /// A fresh in-memory coordinator; background rounds are off (maxInflightRounds 0), so only wait_result
    /// rounds run, inline.
    static func coordinator(clock: ManualClock = Fixtures.clock()) -> Coordinator {
        var config = EngineConfig()
        config.maxInflightRounds = 0
        let caller = ScriptedCaller(otherwise: answerFromURL)
        return Coordinator(
            context: ProcessingContext(
                store: InMemoryStore(), caller: BranchCallRouter(http: caller, grpc: caller), clock: clock, coding: JSONTextCoding(),
                config: config, logger: quiet))
    }

    /// After the requests, what the stored transactions do over time: the cron path claims and processes them as
    /// the clock moves a minute, a day, then 200 years (which saturates), and finally with the due line at the end
    /// of time, so that every stored number reaches the scheduling arithmetic. Returns broken invariants.
    static func driveStoredTransactions(_ coordinator: Coordinator, clock: ManualClock) async -> [String] {
        for step in [0, 60, 86_400, 200 * 365 * 86_400.0] {
            clock.advance(step)
            await coordinator.cronOnce()
        }
        for _ in 0..<2 { await coordinator.cronOnce(expireIn: .greatestFiniteMagnitude) }
        var problems: [String] = []
        let store = coordinator.context.store
        guard let (rows, _) = try? await store.scan(position: nil, limit: 10_000, filter: TransactionFilter()) else {
            return ["the store cannot be scanned"]
        }
        for t in rows where t.transType == .saga && t.status == .succeed {
            let branches = (try? await store.branches(gid: t.gid)) ?? []
            if branches.contains(where: { $0.status == .failed }) { problems.append("saga \(t.gid) succeeded with a failed branch") }
        }
        return problems
    }

    /// Up to `max` records `selector byte, 2-byte big-endian length, body`; the last record takes what is left
    /// when its length runs past the end.
    static func records(_ input: [UInt8], max: Int = 8) -> [(selector: UInt8, body: [UInt8])] {
        var out: [(UInt8, [UInt8])] = []
        var i = 0
        while i < input.count, out.count < max {
            let selector = input[i]
            i += 1
            var length = input.count - i
            if length >= 2 {
                length = min(Int(input[i]) << 8 | Int(input[i + 1]), length - 2)
                i += 2
            }
            out.append((selector, Array(input[i..<(i + length)])))
            i += length
        }
        return out
    }
}

/// Runs an async harness to its end from libFuzzer's synchronous entry point.
package func runBlocking(_ body: @escaping @Sendable () async -> Void) {
    let done = DispatchSemaphore(value: 0)
    Task {
        await body()
        done.signal()
    }
    done.wait()
}
