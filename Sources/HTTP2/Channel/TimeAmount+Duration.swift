import NIOCore

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        // Saturating: a peer may send "99999999H", which does not fit in Int64 nanoseconds.
        let nanos = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let total = nanos.partialValue.addingReportingOverflow(attoseconds / 1_000_000_000)
        self = .nanoseconds(nanos.overflow || total.overflow ? Int64.max : total.partialValue)
    }
}
