/// The `grpc-timeout` header: 1–8 ASCII digits followed by a unit
/// (`H` hours, `M` minutes, `S` seconds, `m` millis, `u` micros, `n` nanos).
package enum GRPCTimeout {
    /// Parses a header value; `nil` for anything malformed (the caller then treats the call as
    /// having no deadline, like grpc-go treats an unparsable value as a protocol error it ignores).
    package static func parse(_ value: String) -> Duration? {
        let bytes = Array(value.utf8)
        guard bytes.count >= 2, bytes.count <= 9 else { return nil }
        var amount: Int64 = 0
        for digit in bytes.dropLast() {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return nil }
            amount = amount * 10 + Int64(digit - UInt8(ascii: "0"))
        }
        switch bytes.last! {  // the length was checked above
        case UInt8(ascii: "H"): return .seconds(amount * 3600)
        case UInt8(ascii: "M"): return .seconds(amount * 60)
        case UInt8(ascii: "S"): return .seconds(amount)
        case UInt8(ascii: "m"): return .milliseconds(amount)
        case UInt8(ascii: "u"): return .microseconds(amount)
        case UInt8(ascii: "n"): return .nanoseconds(amount)
        default: return nil
        }
    }

    /// Encodes a duration with the finest unit that fits in 8 digits, rounding up so the peer
    /// never sees a shorter deadline than we meant.
    package static func encode(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return "1n" }
        let nanos = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        // Past Int64 nanoseconds (~292 years): the largest value gRPC can express.
        if nanos.overflow { return "99999999H" }
        let totalNanos = nanos.partialValue + (attoseconds + 999_999_999) / 1_000_000_000
        let units: [(Int64, Character)] = [
            (1, "n"), (1_000, "u"), (1_000_000, "m"), (1_000_000_000, "S"), (60_000_000_000, "M"), (3_600_000_000_000, "H"),
        ]
        for (scale, unit) in units {
            // Rounded up without `totalNanos + scale - 1`, which overflows near Int64.max.
            let value = totalNanos / scale + (totalNanos % scale == 0 ? 0 : 1)
            if value <= 99_999_999 { return "\(value)\(unit)" }
        }
        return "99999999H"
    }
}
