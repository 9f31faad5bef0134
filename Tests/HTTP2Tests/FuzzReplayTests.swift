import FuzzSupport
import HTTP2
import Testing

/// The committed fuzz inputs (Tests/FuzzCorpus: seeds, and every crash the fuzzers found under
/// `regressions/`) through the fuzzers' own harnesses, FuzzSupport.GRPCFramingHarness and H2ServerHarness.
@Suite("fuzz corpus replay (HTTP/2, gRPC framing)")
struct HTTP2FuzzReplayTests {
    @Test("FuzzGRPCFraming corpus and regressions")
    func framingCorpus() throws {
        let inputs = try FuzzCorpus.inputs("FuzzGRPCFraming")
        #expect(inputs.count >= 5)
        for (name, bytes) in inputs {
            let problems = GRPCFramingHarness.run(bytes)
            #expect(problems.isEmpty, "\(name): \(problems)")
        }
    }

    /// Found by FuzzGRPCFraming: `\x07` + "5215604H" (5,215,604 hours, more than Int64 nanoseconds hold)
    /// parsed fine, and encoding it back trapped on arithmetic overflow. A gRPC branch call with a
    /// request_timeout above ~9.2e9 s took the same path (H2ClientSession's grpc-timeout header).
    @Test("regression: grpc-timeout encoding of durations beyond Int64 nanoseconds does not overflow")
    func timeoutEncodeOverflow() throws {
        #expect(GRPCFramingHarness.run(try FuzzCorpus.regression("FuzzGRPCFraming", "grpc-timeout-encode-overflow")).isEmpty)
        #expect(GRPCTimeout.encode(.seconds(5_215_604 * 3600)) == "99999999H")
        #expect(GRPCTimeout.encode(.seconds(Int64.max)) == "99999999H")
        #expect(GRPCTimeout.encode(.nanoseconds(Int64.max)) == "2562048H")
        #expect(GRPCTimeout.encode(.seconds(9_223_372_036)) == "2562048H")
        #expect(GRPCTimeout.encode(.milliseconds(Int64.max)) == "99999999H")
    }

    @Test("FuzzH2Server corpus and regressions")
    func h2Corpus() throws {
        let inputs = try FuzzCorpus.inputs("FuzzH2Server")
        #expect(inputs.count >= 5)
        for (name, bytes) in inputs {
            let problems = H2ServerHarness.run(bytes)
            #expect(problems.isEmpty, "\(name): \(problems)")
        }
    }
}
