import DTMCore
import DTMHTTP
import Dispatch
import Logging

/// What the request harnesses share: a fixed clock, a branch caller answering from the URL, an in-memory
/// coordinator without background rounds, and the record format of their inputs.
enum Fixtures {
    static let quiet = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

    struct FixedClock: CoordinatorClock {
        func now() -> Timestamp { Timestamp(microseconds: 1_700_000_000_000_000) }
        func sleep(seconds: Double) async throws { throw CancellationError() }
    }

    /// …fail… answers FAILURE, …ongoing… ONGOING, …err… an error, anything else SUCCESS.
    struct URLScriptedCaller: BranchCaller {
        func call(_ call: BranchCall) async -> BranchCallResult {
            if call.url.contains("fail") { return .failure("FAILURE") }
            if call.url.contains("ongoing") { return .ongoing("ONGOING") }
            if call.url.contains("err") { return .error("branch error") }
            return .success
        }
    }

    /// A fresh in-memory coordinator; background rounds are off (maxInflightRounds 0), so only wait_result
    /// rounds run, inline.
    static func coordinator() -> Coordinator {
        var config = EngineConfig()
        config.maxInflightRounds = 0
        return Coordinator(context: ProcessingContext(
            store: InMemoryStore(), caller: URLScriptedCaller(), clock: FixedClock(), coding: JSONTextCoding(), config: config, logger: quiet))
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
public func runBlocking(_ body: @escaping @Sendable () async -> Void) {
    let done = DispatchSemaphore(value: 0)
    Task {
        await body()
        done.signal()
    }
    done.wait()
}
