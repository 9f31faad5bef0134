/// The one reading of an elapsed time (`ContinuousClock.now - started`) as a number: seconds for the metrics'
/// histograms, whole milliseconds for log lines. Both count the whole seconds and the fraction.
extension Duration {
    package var secondsValue: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// Saturating, so that no duration can trap.
    package var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds < 0 ? .min : .max }
        return Saturating.add(ms, attoseconds / 1_000_000_000_000_000)
    }
}
