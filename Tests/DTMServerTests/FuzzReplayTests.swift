import DTMCore
import DTMHTTP
import FoundationEssentials
import Logging
import Testing

/// The committed FuzzJSONRequest inputs (Tests/FuzzCorpus: seeds, and `regressions/`) through the same
/// path as the libFuzzer harness in Sources/Fuzz/FuzzJSONRequest: `route byte, u16 length, body` records
/// into APIRouter.handle over a fresh in-memory coordinator.
@Suite("fuzz corpus replay (JSON requests)")
struct JSONFuzzReplayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzCorpus")
    static let routes: [(String, String)] = [
        ("POST", "/api/dtmsvr/prepare"), ("POST", "/api/dtmsvr/submit"), ("POST", "/api/dtmsvr/abort"),
        ("POST", "/api/dtmsvr/forceStop"), ("POST", "/api/dtmsvr/resetNextCronTime"), ("POST", "/api/dtmsvr/registerBranch"),
        ("POST", "/api/dtmsvr/registerTccBranch"), ("POST", "/api/dtmsvr/registerXaBranch"), ("POST", "/api/dtmsvr/prepareWorkflow"),
        ("POST", "/api/json-rpc"), ("GET", "/api/dtmsvr/query?"), ("GET", "/api/dtmsvr/all?"), ("GET", "/api/dtmsvr/scanKV?"),
        ("GET", "/api/dtmsvr/queryKV?"), ("GET", "/api/dtmsvr/resetCronTime?"), ("GET", "/api/dtmsvr/subscribe?"),
        ("GET", "/api/dtmsvr/unsubscribe?"), ("DELETE", "/api/dtmsvr/topic/"), ("GET", "/api/dtmsvr/newGid"), ("GET", "/api/ping"),
    ]

    struct Clock: CoordinatorClock {
        func now() -> Timestamp { Timestamp(microseconds: 1_700_000_000_000_000) }
        func sleep(seconds: Double) async throws { throw CancellationError() }
    }
    struct Caller: BranchCaller {
        func call(_ call: BranchCall) async -> BranchCallResult {
            if call.url.contains("fail") { return .failure("FAILURE") }
            if call.url.contains("ongoing") { return .ongoing("ONGOING") }
            if call.url.contains("err") { return .error("branch error") }
            return .success
        }
    }

    /// Runs one input; returns the HTTP statuses of its calls.
    static func harness(_ input: [UInt8]) async -> [Int] {
        var calls: [(String, String, [UInt8])] = []
        var i = 0
        while i < input.count, calls.count < 8 {
            let selector = input[i]
            i += 1
            var length = input.count - i
            if length >= 2 {
                length = min(Int(input[i]) << 8 | Int(input[i + 1]), length - 2)
                i += 2
            }
            let body = Array(input[i..<(i + length)])
            i += length
            let (method, path) = routes[Int(selector) % routes.count]
            if path.hasSuffix("?") || path.hasSuffix("/") {
                calls.append((method, path + String(decoding: body, as: UTF8.self), []))
            } else {
                calls.append((method, path, body))
            }
        }
        var config = EngineConfig()
        config.maxInflightRounds = 0
        let quiet = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
        let router = APIRouter(
            coordinator: Coordinator(context: ProcessingContext(
                store: InMemoryStore(), caller: Caller(), clock: Clock(), coding: JSONTextCoding(), config: config, logger: quiet)),
            version: "fuzz", logger: quiet)
        var statuses: [Int] = []
        for (method, uri, body) in calls { statuses.append(await router.handle(method: method, uri: uri, body: body).status) }
        return statuses
    }

    static func files(_ dir: String) throws -> [URL] {
        let url = root.appendingPathComponent(dir)
        return try FileManager.default.contentsOfDirectory(atPath: url.path).sorted().map { url.appendingPathComponent($0) }
    }

    @Test("FuzzJSONRequest seeds are answered without a server error")
    func seeds() async throws {
        let seeds = try Self.files("FuzzJSONRequest")
        #expect(seeds.count >= 5)
        for file in seeds {
            let statuses = await Self.harness([UInt8](try Data(contentsOf: file)))
            #expect(statuses.allSatisfy { $0 < 500 }, "\(file.lastPathComponent): \(statuses)")
        }
    }

    /// Found while writing the fuzz harnesses: a submit with "retry_interval": Int64.max trapped in
    /// Timestamp.adding (next cron time in microseconds) and took the server down.
    @Test("regression: submit with retry_interval Int64.max is a 400 naming the option")
    func retryIntervalOverflow() async throws {
        let input = [UInt8](try Data(contentsOf: Self.root.appendingPathComponent("regressions/FuzzJSONRequest/retry-interval-overflow")))
        #expect(await Self.harness(input) == [400])
        for file in (try? Self.files("regressions/FuzzJSONRequest")) ?? [] {
            _ = await Self.harness([UInt8](try Data(contentsOf: file)))
        }
    }
}
