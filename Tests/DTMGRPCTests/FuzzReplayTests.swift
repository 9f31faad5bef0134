import FuzzSupport
import DTMGRPC
import HTTP2
import Testing

/// The committed FuzzProtoRequest inputs (Tests/FuzzCorpus: seeds, and `regressions/`) through the fuzzer's
/// own harness, FuzzSupport.ProtoRequestHarness (DtmService.handle plus the encode → decode round trips).
@Suite("fuzz corpus replay (protobuf requests)")
struct ProtoFuzzReplayTests {
    @Test("FuzzProtoRequest seeds: every call of every seed is answered OK")
    func seeds() async throws {
        let seeds = try FuzzCorpus.files("FuzzProtoRequest")
        #expect(seeds.count >= 5)
        for (name, bytes) in seeds {
            let (codes, problems) = await ProtoRequestHarness.run(bytes)
            #expect(problems.isEmpty, "\(name): \(problems)")
            // saga-failing-custom's saga fails by design (ABORTED with wait_result); the extremes seed holds values
            // past the limits on purpose, which are refused before anything is stored.
            let allowed: Set<GRPCStatusCode> = name.contains("extremes") ? [.ok, .aborted, .invalidArgument] : [.ok, .aborted]
            #expect(codes.allSatisfy { allowed.contains($0) }, "\(name): \(codes)")
            if name.contains("extremes") { #expect(codes.contains(.invalidArgument) && codes.contains(.ok), "\(name): \(codes)") }
        }
    }

    /// Found while writing the fuzz harnesses (replayed with the FuzzProtoRequest replayer): Submit with
    /// TransOptions.RetryInterval = Int64.max trapped in Timestamp.adding (next cron time in microseconds).
    @Test("regression: Submit with RetryInterval Int64.max is INVALID_ARGUMENT, not a trap")
    func retryIntervalOverflow() async throws {
        let input = try FuzzCorpus.regression("FuzzProtoRequest", "retry-interval-overflow")
        #expect(await ProtoRequestHarness.run(input).codes == [.invalidArgument])
        for (name, bytes) in try FuzzCorpus.files("regressions/FuzzProtoRequest") {
            let problems = await ProtoRequestHarness.run(bytes).problems
            #expect(problems.isEmpty, "\(name): \(problems)")
        }
    }
}
