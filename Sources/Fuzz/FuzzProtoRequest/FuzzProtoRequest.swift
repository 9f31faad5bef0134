// libFuzzer target: protobuf request decoding and model conversion (DTMGRPC/ProtoCodec.swift over the
// protobuf-c code in DTMProtoC) and DtmService.handle, which decodes, validates and runs the call.
//
// Input: up to 8 records `method byte, 2-byte big-endian length, message` (the last record takes what is
// left when its length runs past the end). Each input gets a fresh in-memory coordinator whose branch
// caller answers from the URL (…fail… FAILURE, …ongoing… ONGOING, …err… error, else SUCCESS), so a
// Prepare can be followed by a RegisterBranch and an Abort. Background rounds are off
// (maxInflightRounds 0): only wait_result rounds run, inline. Every message that decodes as a DtmRequest
// or DtmBranchRequest must survive encode → decode unchanged.
import FuzzSupport
import DTMCore
import DTMGRPC
import Dispatch
import FoundationEssentials
import Logging

let methods = DtmService.methods.sorted() + ["/dtmgimp.Dtm/Unknown"]
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

struct JSONCoding: TextCoding {
    func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T { try JSONDecoder().decode(type, from: Data(text.utf8)) }
    func encode<T: Encodable>(_ value: T) throws -> String { String(decoding: try JSONEncoder().encode(value), as: UTF8.self) }
}

func makeService() -> DtmService {
    var config = EngineConfig()
    config.maxInflightRounds = 0
    let context = ProcessingContext(
        store: InMemoryStore(), caller: ScriptedCaller(), clock: FixedClock(), coding: JSONCoding(), config: config, logger: quiet)
    return DtmService(coordinator: Coordinator(context: context), logger: quiet)
}

/// `method byte, u16 length, message` records.
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

func checkRoundTrips(_ message: [UInt8]) {
    if let request = try? ProtoCodec.decodeRequest(message) {
        let again = try? ProtoCodec.decodeRequest(ProtoCodec.encodeRequest(request))
        precondition(again == request, "DtmRequest does not survive encode → decode")
    }
    if let registration = try? ProtoCodec.decodeBranchRequest(message) {
        let again = try? ProtoCodec.decodeBranchRequest(ProtoCodec.encodeBranchRequest(registration))
        precondition(again == registration, "DtmBranchRequest does not survive encode → decode")
    }
    _ = try? ProtoCodec.decodeTopicRequest(message)
}

final class Done: @unchecked Sendable {
    let semaphore = DispatchSemaphore(value: 0)
}

func fuzzOne(_ input: UnsafeBufferPointer<UInt8>) {
    let calls = records(input).map { (methods[Int($0.selector) % methods.count], $0.body) }
    for (_, message) in calls { checkRoundTrips(message) }
    let service = makeService()
    let done = Done()
    Task {
        for (method, message) in calls {
            let reply = await service.handle(method: method, message: message)
            precondition(reply.code == .ok || reply.payload.isEmpty)
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
