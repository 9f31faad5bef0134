import Testing
@testable import HTTP2

@Suite("gRPC framing helpers")
struct GRPCFramingTests {
    @Test("frame: 5-byte prefix, flag 0, big-endian length")
    func framePrefix() {
        #expect(GRPCFraming.frame([0xAA, 0xBB]) == [0, 0, 0, 0, 2, 0xAA, 0xBB])
        #expect(GRPCFraming.frame([]) == [0, 0, 0, 0, 0])
        let big = GRPCFraming.frame(bytes(0x01_02_03))
        #expect(Array(big.prefix(5)) == [0, 0, 0x01, 0x02, 0x03])
    }

    @Test("deframer: message split across every possible chunk boundary")
    func splitAnywhere() {
        let messages = [bytes(3), [], bytes(300, seed: 9)]
        let wire = messages.flatMap(GRPCFraming.frame)
        for cut1 in 0...wire.count {
            for cut2 in stride(from: cut1, through: wire.count, by: 17) {
                var deframer = GRPCMessageDeframer(maxMessageSize: 1000)
                var got: [GRPCMessageDeframer.Event] = []
                got += deframer.append(Array(wire[..<cut1]))
                got += deframer.append(Array(wire[cut1..<cut2]))
                got += deframer.append(Array(wire[cut2...]))
                #expect(got == messages.map { .message($0) }, "cuts \(cut1), \(cut2)")
                #expect(!deframer.hasPartialMessage)
            }
        }
    }

    @Test("deframer: one byte at a time, partial state visible")
    func byteByByte() {
        let wire = GRPCFraming.frame(bytes(10))
        var deframer = GRPCMessageDeframer(maxMessageSize: 100)
        for (i, byte) in wire.enumerated() {
            let events = deframer.append([byte])
            if i == wire.count - 1 {
                #expect(events == [.message(bytes(10))])
            } else {
                #expect(events.isEmpty)
                #expect(deframer.hasPartialMessage)
            }
        }
    }

    @Test("deframer: oversized length refused from the prefix alone; compressed flag refused")
    func limits() {
        var deframer = GRPCMessageDeframer(maxMessageSize: 10)
        #expect(deframer.append([0, 0, 0, 0, 11]) == [.tooLarge(11)])
        #expect(deframer.append(GRPCFraming.frame([1])).isEmpty, "input after a failure is ignored")
        var exact = GRPCMessageDeframer(maxMessageSize: 10)
        #expect(exact.append(GRPCFraming.frame(bytes(10))) == [.message(bytes(10))])
        var compressed = GRPCMessageDeframer(maxMessageSize: 10)
        #expect(compressed.append([1, 0, 0, 0, 1, 0x42]) == [.compressed])
    }

    @Test("grpc-message percent-encoding round trip")
    func percentEncoding() {
        #expect(GRPCMessageEncoding.encode("plain text ok") == "plain text ok")
        #expect(GRPCMessageEncoding.encode("100%") == "100%25")
        #expect(GRPCMessageEncoding.encode("a\nb") == "a%0Ab")
        #expect(GRPCMessageEncoding.encode("é") == "%C3%A9")
        for text in ["", "FAILURE", "current status 'succeed', cannot sumbmit. FAILURE", "ünïcödé ✓ 100% \r\n\t~"] {
            #expect(GRPCMessageEncoding.decode(GRPCMessageEncoding.encode(text)) == text)
        }
        #expect(GRPCMessageEncoding.decode("bad %zz and %4") == "bad %zz and %4")
    }

    @Test("grpc-timeout parsing: units, digit limits, garbage")
    func timeoutParsing() {
        #expect(GRPCTimeout.parse("100m") == .milliseconds(100))
        #expect(GRPCTimeout.parse("3S") == .seconds(3))
        #expect(GRPCTimeout.parse("1H") == .seconds(3600))
        #expect(GRPCTimeout.parse("2M") == .seconds(120))
        #expect(GRPCTimeout.parse("5u") == .microseconds(5))
        #expect(GRPCTimeout.parse("7n") == .nanoseconds(7))
        #expect(GRPCTimeout.parse("99999999S") == .seconds(99_999_999))
        for bad in ["", "S", "100", "123456789S", "1x", "-1S", " 1S", "1.5S"] {
            #expect(GRPCTimeout.parse(bad) == nil, "\(bad)")
        }
    }

    @Test("grpc-timeout encoding: finest unit within 8 digits, never shorter")
    func timeoutEncoding() {
        #expect(GRPCTimeout.encode(.seconds(3)) == "3000000u")
        #expect(GRPCTimeout.encode(.milliseconds(100)) == "100000u")
        #expect(GRPCTimeout.encode(.nanoseconds(5)) == "5n")
        #expect(GRPCTimeout.encode(.seconds(3600 * 100)) == "360000S")
        #expect(GRPCTimeout.encode(.seconds(200_000_000)) == "3333334M", "9 digits of seconds do not fit")
        #expect(GRPCTimeout.encode(.zero) == "1n")
        for d: Duration in [.nanoseconds(1), .milliseconds(1234), .seconds(86400 * 365)] {
            let parsed = GRPCTimeout.parse(GRPCTimeout.encode(d))!
            #expect(parsed >= d)
        }
    }
}
