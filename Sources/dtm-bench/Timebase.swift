/// Nanoseconds since the start of the run, on the continuous clock: every timestamp of a run (intended and
/// actual send times, answers, branch arrivals) is one of these, so they can be subtracted across threads.
struct Timebase: Sendable {
    let origin = ContinuousClock.now

    func now() -> Int64 { Self.nanos(origin.duration(to: ContinuousClock.now)) }

    func instant(_ nanos: Int64) -> ContinuousClock.Instant { origin + .nanoseconds(nanos) }

    static func nanos(_ d: Duration) -> Int64 {
        let c = d.components
        return c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
    }
}

/// A number with `digits` decimals (no Foundation).
func fmt(_ v: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (v * scale).rounded() / scale
    if digits == 0 { return String(Int(r)) }
    let whole = Int(r.rounded(.towardZero))
    let frac = Int((abs(r - Double(whole)) * scale).rounded())
    let f = String(frac)
    return "\(r < 0 && whole == 0 ? "-" : "")\(whole).\(String(repeating: "0", count: max(0, digits - f.count)))\(f)"
}
