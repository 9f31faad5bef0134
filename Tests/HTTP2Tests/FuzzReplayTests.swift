import FoundationEssentials
import HTTP2
import Logging
import Testing

/// The committed fuzz inputs (Tests/FuzzCorpus: seeds, and every crash the fuzzers found under
/// `regressions/`) run through the same checks as the libFuzzer harnesses in Sources/Fuzz.
enum FuzzCorpus {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzCorpus")

    /// (name, bytes) of every file in `<target>/` and `regressions/<target>/`.
    static func inputs(_ target: String) throws -> [(String, [UInt8])] {
        var out: [(String, [UInt8])] = []
        for dir in [target, "regressions/" + target] {
            let url = root.appendingPathComponent(dir)
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: url.path) else { continue }
            for name in names.sorted() {
                out.append(("\(dir)/\(name)", [UInt8](try Data(contentsOf: url.appendingPathComponent(name)))))
            }
        }
        return out
    }

    static func regression(_ target: String, _ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: root.appendingPathComponent("regressions/\(target)/\(name)")))
    }
}

@Suite("fuzz corpus replay (HTTP/2, gRPC framing)")
struct HTTP2FuzzReplayTests {
    /// FuzzGRPCFraming's checks: chunked and whole deframing agree; the header codecs round-trip.
    static func framingHarness(_ input: [UInt8]) {
        guard let control = input.first else { return }
        let stream = Array(input.dropFirst())
        let limit = [0, 1, 5, 64, 1000, 4 * 1024 * 1024, 1 << 31, Int.max][Int(control & 7)]
        let chunkSize = Int(control >> 3) + 1
        var whole = GRPCMessageDeframer(maxMessageSize: limit)
        let expected = whole.append(stream)
        var chunked = GRPCMessageDeframer(maxMessageSize: limit)
        var events: [GRPCMessageDeframer.Event] = []
        var start = 0
        while start < stream.count {
            events += chunked.append(Array(stream[start..<min(start + chunkSize, stream.count)]))
            start += chunkSize
        }
        #expect(events == expected)
        let text = String(decoding: stream, as: UTF8.self)
        #expect(GRPCMessageEncoding.decode(GRPCMessageEncoding.encode(text)) == text)
        if let timeout = GRPCTimeout.parse(text) {
            #expect(GRPCTimeout.parse(GRPCTimeout.encode(timeout)).map { $0 >= timeout } == true, "\(text)")
        }
    }

    @Test("FuzzGRPCFraming corpus and regressions")
    func framingCorpus() throws {
        let inputs = try FuzzCorpus.inputs("FuzzGRPCFraming")
        #expect(inputs.count >= 5)
        for (_, bytes) in inputs { Self.framingHarness(bytes) }
    }

    /// Found by FuzzGRPCFraming: `\x07` + "5215604H" (5,215,604 hours, more than Int64 nanoseconds hold)
    /// parsed fine, and encoding it back trapped on arithmetic overflow. A gRPC branch call with a
    /// request_timeout above ~9.2e9 s took the same path (H2ClientSession's grpc-timeout header).
    @Test("regression: grpc-timeout encoding of durations beyond Int64 nanoseconds does not overflow")
    func timeoutEncodeOverflow() throws {
        Self.framingHarness(try FuzzCorpus.regression("FuzzGRPCFraming", "grpc-timeout-encode-overflow"))
        #expect(GRPCTimeout.encode(.seconds(5_215_604 * 3600)) == "99999999H")
        #expect(GRPCTimeout.encode(.seconds(Int64.max)) == "99999999H")
        #expect(GRPCTimeout.encode(.nanoseconds(Int64.max)) == "2562048H")
        #expect(GRPCTimeout.encode(.seconds(9_223_372_036)) == "2562048H")
        #expect(GRPCTimeout.encode(.milliseconds(Int64.max)) == "99999999H")
    }

    /// FuzzH2Server's harness: preface + input into a fresh session; unary calls answered (half of them
    /// after all input), streams echoed; output drained; graceful shutdown drained.
    static func h2Harness(_ input: [UInt8]) throws {
        var configuration = H2ServerSession.Configuration()
        configuration.streamingPaths = ["/fuzz.Echo/Stream"]
        configuration.maxMessageSize = 4096
        configuration.maxConcurrentStreams = 100
        let session = try H2ServerSession(configuration: configuration, logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
        func answer(_ request: GRPCRequest) {
            let choice = request.message.first ?? 0
            if choice & 1 == 0 {
                session.respond(streamID: request.streamID, .ok(request.message, metadata: [("x-fuzz", "1")]))
            } else {
                session.respond(streamID: request.streamID, .error(
                    GRPCStatusCode(rawValue: Int(choice >> 1) % 17), String(decoding: request.message.dropFirst(), as: UTF8.self)))
            }
        }
        func drain() throws {
            for _ in 0..<10_000 {
                guard let out = try session.pendingOutput(limit: 16 * 1024), out.readableBytes > 0 else { return }
            }
            Issue.record("pendingOutput did not run dry")
        }
        var later: [GRPCRequest] = []
        var count = 0
        session.onRequest = { request in
            count += 1
            if count % 2 == 1 { answer(request) } else { later.append(request) }
        }
        session.onStreamMessage = { [unowned session] in session.sendStreamMessage(streamID: $0.streamID, $0.message) }
        session.onStreamHalfClosed = { [unowned session] in session.finishStream(streamID: $0, GRPCStatus(.ok)) }
        defer { session.onRequest = nil }
        do {
            try session.receive(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + input)
        } catch {
            try drain()
            return
        }
        try drain()
        for request in later { answer(request) }
        try drain()
        session.beginGracefulShutdown()
        try drain()
        session.submitFinalGoaway()
        try drain()
    }

    @Test("FuzzH2Server corpus and regressions")
    func h2Corpus() throws {
        let inputs = try FuzzCorpus.inputs("FuzzH2Server")
        #expect(inputs.count >= 5)
        for (_, bytes) in inputs { try Self.h2Harness(bytes) }
    }
}
