/// A point in wall-clock time, microseconds since the Unix epoch (UTC).
///
/// The core keeps time as a plain integer so that it needs no Foundation and so that stores can
/// compare and index it cheaply; adapters convert it to RFC 3339 text at the edge.
///
/// Every operation saturates at the ends of `Int64` instead of trapping: times and intervals come from
/// clients, configuration and stored rows, and no value of theirs may stop the process.
package struct Timestamp: Sendable, Hashable, Comparable, Codable {
    package var microseconds: Int64

    package init(microseconds: Int64) { self.microseconds = microseconds }

    /// `seconds` rounded to the microsecond; saturates, and NaN is the epoch.
    package init(seconds: Double) { self.microseconds = Saturating.microseconds(fromSeconds: seconds) }

    /// Epoch milliseconds, saturating.
    package init(milliseconds: Int64) { self.microseconds = Saturating.multiply(milliseconds, 1000) }

    package static let distantPast = Timestamp(microseconds: .min)
    package static let distantFuture = Timestamp(microseconds: .max)

    package var seconds: Double { Double(microseconds) / 1_000_000 }

    package static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.microseconds < rhs.microseconds }

    /// `self` moved by `seconds`, saturating. (Whole seconds up to 2⁵³ µs, 285 years, are exact in a double.)
    package func adding(seconds: Double) -> Timestamp {
        Timestamp(microseconds: Saturating.add(microseconds, Saturating.microseconds(fromSeconds: seconds)))
    }

    /// `self` rounded up to a whole second: a due time for a column of whole seconds (DTM's SQL schemas), so that a
    /// delay, back-off or lease never ends early. Unchanged when it cannot be rounded (the end of `Int64`).
    package var wholeSecondUp: Timestamp {
        let (q, r) = microseconds.quotientAndRemainder(dividingBy: 1_000_000)
        guard r != 0 else { return self }
        // The quotient is truncated toward zero: up from a negative time is the quotient itself.
        let (up, overflow) = (r > 0 ? q + 1 : q).multipliedReportingOverflow(by: 1_000_000)
        return overflow ? self : Timestamp(microseconds: up)
    }

    /// Seconds elapsed from `earlier` to `self` (negative if `earlier` is later). Computed in floating point, so
    /// any two stored times may be compared.
    package func seconds(since earlier: Timestamp) -> Double {
        (Double(microseconds) - Double(earlier.microseconds)) / 1_000_000
    }
}

/// Saturating `Int64` arithmetic: the only arithmetic the core does on times, intervals and counts that come
/// from outside. A result beyond `Int64` is clamped to `Int64.min` / `Int64.max`.
package enum Saturating {
    package static func add(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        if !overflow { return sum }
        return b > 0 ? .max : .min
    }

    package static func subtract(_ a: Int64, _ b: Int64) -> Int64 {
        let (difference, overflow) = a.subtractingReportingOverflow(b)
        if !overflow { return difference }
        return b < 0 ? .max : .min
    }

    package static func multiply(_ a: Int64, _ b: Int64) -> Int64 {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        if !overflow { return product }
        return (a < 0) == (b < 0) ? .max : .min
    }

    /// `seconds × 10⁶` rounded, clamped to `Int64`; NaN is 0.
    package static func microseconds(fromSeconds seconds: Double) -> Int64 {
        int64(clamping: (seconds * 1_000_000).rounded())
    }

    /// A double converted to `Int64` without trapping: clamped at the ends, NaN is 0.
    package static func int64(clamping value: Double) -> Int64 {
        if value.isNaN { return 0 }
        // 2⁶³ is exactly representable; every double below it converts.
        if value >= 9_223_372_036_854_775_808.0 { return .max }
        if value <= -9_223_372_036_854_775_808.0 { return .min }
        return Int64(value)
    }
}
