import EventLoopSupport
import Testing

@Suite("connection limit")
struct ConnectionLimitTests {
    @Test("refusals are logged at 1, 10, 100, … and every 10,000th, without overflow at any count")
    func refusalLogging() {
        for n in [1, 10, 100, 1000, 10_000, 20_000, 1_000_000] { #expect(ConnectionLimit.shouldLog(refusal: n), "\(n)") }
        for n in [2, 11, 99, 15_000, 123_456] { #expect(!ConnectionLimit.shouldLog(refusal: n), "\(n)") }
        #expect(!ConnectionLimit.shouldLog(refusal: Int.max))
        #expect(ConnectionLimit.shouldLog(refusal: 1_000_000_000_000_000_000))
    }
}
