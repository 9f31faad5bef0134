import DTMCore
import DTMGRPC
import FoundationEssentials
import Logging
import Testing

/// The committed FuzzProtoRequest inputs (Tests/FuzzCorpus: seeds, and `regressions/`) through the same
/// path as the libFuzzer harness in Sources/Fuzz/FuzzProtoRequest: `method byte, u16 length, message`
/// records into DtmService.handle over a fresh in-memory coordinator, plus the encode → decode round trips.
@Suite("fuzz corpus replay (protobuf requests)")
struct ProtoFuzzReplayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzCorpus")
    static let methods = DtmService.methods.sorted() + ["/dtmgimp.Dtm/Unknown"]

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
    struct Coding: TextCoding {
        func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T { try JSONDecoder().decode(type, from: Data(text.utf8)) }
        func encode<T: Encodable>(_ value: T) throws -> String { String(decoding: try JSONEncoder().encode(value), as: UTF8.self) }
    }

    /// Runs one input; returns the status codes of its calls.
    static func harness(_ input: [UInt8]) async -> [StatusMapping.Code] {
        var calls: [(String, [UInt8])] = []
        var i = 0
        while i < input.count, calls.count < 8 {
            let selector = input[i]
            i += 1
            var length = input.count - i
            if length >= 2 {
                length = min(Int(input[i]) << 8 | Int(input[i + 1]), length - 2)
                i += 2
            }
            calls.append((methods[Int(selector) % methods.count], Array(input[i..<(i + length)])))
            i += length
        }
        for (_, message) in calls {
            if let r = try? ProtoCodec.decodeRequest(message) { #expect((try? ProtoCodec.decodeRequest(ProtoCodec.encodeRequest(r))) == r) }
            if let r = try? ProtoCodec.decodeBranchRequest(message) {
                #expect((try? ProtoCodec.decodeBranchRequest(ProtoCodec.encodeBranchRequest(r))) == r)
            }
        }
        var config = EngineConfig()
        config.maxInflightRounds = 0
        let quiet = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
        let service = DtmService(
            coordinator: Coordinator(context: ProcessingContext(
                store: InMemoryStore(), caller: Caller(), clock: Clock(), coding: Coding(), config: config, logger: quiet)),
            logger: quiet)
        var codes: [StatusMapping.Code] = []
        for (method, message) in calls { codes.append(await service.handle(method: method, message: message).code) }
        return codes
    }

    static func files(_ dir: String) throws -> [URL] {
        let url = root.appendingPathComponent(dir)
        return try FileManager.default.contentsOfDirectory(atPath: url.path).sorted().map { url.appendingPathComponent($0) }
    }

    @Test("FuzzProtoRequest seeds: every call of every seed is answered OK")
    func seeds() async throws {
        let seeds = try Self.files("FuzzProtoRequest")
        #expect(seeds.count >= 5)
        for file in seeds {
            let codes = await Self.harness([UInt8](try Data(contentsOf: file)))
            // saga-failing-custom's saga fails by design (ABORTED with wait_result).
            #expect(codes.allSatisfy { $0 == .ok || $0 == .aborted }, "\(file.lastPathComponent): \(codes)")
        }
    }

    /// Found while writing the fuzz harnesses (replayed with the FuzzProtoRequest replayer): Submit with
    /// TransOptions.RetryInterval = Int64.max trapped in Timestamp.adding (next cron time in microseconds).
    @Test("regression: Submit with RetryInterval Int64.max is INVALID_ARGUMENT, not a trap")
    func retryIntervalOverflow() async throws {
        let input = [UInt8](try Data(contentsOf: Self.root.appendingPathComponent("regressions/FuzzProtoRequest/retry-interval-overflow")))
        #expect(await Self.harness(input) == [.invalidArgument])
        for file in (try? Self.files("regressions/FuzzProtoRequest")) ?? [] {
            _ = await Self.harness([UInt8](try Data(contentsOf: file)))
        }
    }
}
