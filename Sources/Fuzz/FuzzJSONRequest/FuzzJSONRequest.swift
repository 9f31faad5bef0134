// libFuzzer target: JSON request decoding (DTMHTTP: TransactionRequestJSON, BranchRegistrationJSON, the
// JSON-RPC endpoint) through APIRouter.handle, which decodes a body into a request and runs it; GET and
// DELETE routes take the record's bytes as their query string / topic name.
//
// Input: up to 8 records `route byte, 2-byte big-endian length, body` (the last record takes what is
// left when its length runs past the end). Each input gets a fresh in-memory coordinator whose branch
// caller answers from the URL (…fail… FAILURE, …ongoing… ONGOING, …err… error, else SUCCESS).
// Background rounds are off (maxInflightRounds 0): only wait_result rounds run, inline.
import FuzzSupport
import DTMCore
import DTMHTTP
import Dispatch
import FoundationEssentials
import Logging

/// (method, path; a path ending in "?" or "/" gets the body appended instead of sending it).
let routes: [(String, String)] = [
    ("POST", "/api/dtmsvr/prepare"), ("POST", "/api/dtmsvr/submit"), ("POST", "/api/dtmsvr/abort"),
    ("POST", "/api/dtmsvr/forceStop"), ("POST", "/api/dtmsvr/resetNextCronTime"), ("POST", "/api/dtmsvr/registerBranch"),
    ("POST", "/api/dtmsvr/registerTccBranch"), ("POST", "/api/dtmsvr/registerXaBranch"), ("POST", "/api/dtmsvr/prepareWorkflow"),
    ("POST", "/api/json-rpc"), ("GET", "/api/dtmsvr/query?"), ("GET", "/api/dtmsvr/all?"), ("GET", "/api/dtmsvr/scanKV?"),
    ("GET", "/api/dtmsvr/queryKV?"), ("GET", "/api/dtmsvr/resetCronTime?"), ("GET", "/api/dtmsvr/subscribe?"),
    ("GET", "/api/dtmsvr/unsubscribe?"), ("DELETE", "/api/dtmsvr/topic/"), ("GET", "/api/dtmsvr/newGid"), ("GET", "/api/ping"),
]
private let quiet = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

struct FixedClock: CoordinatorClock {
    func now() -> Timestamp { Timestamp(microseconds: 1_700_000_000_000_000) }
    func sleep(seconds: Double) async throws { throw CancellationError() }
}

struct ScriptedCaller: BranchCaller {
    func call(_ call: BranchCall) async -> BranchCallResult {
        if call.url.contains("fail") { return .failure("FAILURE") }
        if call.url.contains("ongoing") { return .ongoing("ONGOING") }
        if call.url.contains("err") { return .error("branch error") }
        return .success
    }
}

func makeRouter() -> APIRouter {
    var config = EngineConfig()
    config.maxInflightRounds = 0
    let context = ProcessingContext(
        store: InMemoryStore(), caller: ScriptedCaller(), clock: FixedClock(), coding: JSONTextCoding(), config: config, logger: quiet)
    return APIRouter(coordinator: Coordinator(context: context), version: "fuzz", logger: quiet)
}

/// `route byte, u16 length, body` records.
func records(_ input: UnsafeBufferPointer<UInt8>, max: Int = 8) -> [(selector: UInt8, body: [UInt8])] {
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

final class Done: @unchecked Sendable {
    let semaphore = DispatchSemaphore(value: 0)
}

func fuzzOne(_ input: UnsafeBufferPointer<UInt8>) {
    let calls = records(input).map { record -> (String, String, [UInt8]) in
        let (method, path) = routes[Int(record.selector) % routes.count]
        if path.hasSuffix("?") || path.hasSuffix("/") {
            return (method, path + String(decoding: record.body, as: UTF8.self), [])
        }
        return (method, path, record.body)
    }
    let router = makeRouter()
    let done = Done()
    Task {
        for (method, uri, body) in calls {
            let response = await router.handle(method: method, uri: uri, body: body)
            precondition((200..<600).contains(response.status))
        }
        done.semaphore.signal()
    }
    done.semaphore.wait()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(UnsafeBufferPointer(start: data, count: size))
    return 0
}

#if !FUZZING
/// Without libFuzzer: runs the harness on each file named on the command line.
@main struct Replay {
    static func main() throws { try replayFiles(fuzzOne) }
}
#endif
