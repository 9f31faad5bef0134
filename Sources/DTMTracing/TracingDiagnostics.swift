package import Logging
import Synchronization

/// What swift-otel says about its own work, made bounded for an operator: spans dropped because the export queue
/// was full are counted (`dropped`, for `dtm_trace_spans_dropped_total`) and every warning or error it logs (an
/// unreachable collector fails each export) reaches the log at most once per `interval` per message, with the
/// count of the ones held back.
package final class TracingDiagnostics: Sendable {
    private let interval: Duration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let onDropped: @Sendable (Int) -> Void
    /// Per message: when it was last logged and how many were held back since.
    private let lastLogged = Mutex<[String: (at: ContinuousClock.Instant, held: Int)]>([:])

    package init(
        interval: Duration = .seconds(60), now: @escaping @Sendable () -> ContinuousClock.Instant = { .now },
        onDropped: @escaping @Sendable (Int) -> Void
    ) {
        self.interval = interval
        self.now = now
        self.onDropped = onDropped
    }

    /// The diagnostic logger to give swift-otel: `base`'s handler behind this filter.
    package func logger(base: Logger) -> Logger {
        var handler = DiagnosticsLogHandler(base: base.handler, diagnostics: self)
        handler.logLevel = base.logLevel
        return Logger(label: "OTel", factory: { _ in handler })
    }

    /// Whether a line may be logged now, and how many like it were held back before it.
    func admit(_ message: String) -> (Bool, held: Int) {
        let at = now()
        return lastLogged.withLock { table in
            // Messages are swift-otel's own texts, a small set; the bound keeps it so whatever they hold.
            if table.count > 256 { table.removeAll() }
            if let last = table[message], at < last.at + interval {
                table[message] = (last.at, last.held + 1)
                return (false, 0)
            }
            let held = table[message]?.held ?? 0
            table[message] = (at, 0)
            return (true, held)
        }
    }

    func dropped(_ metadata: Logger.Metadata?) {
        guard let value = metadata?["dropped_count"], let count = Int("\(value)"), count > 0 else { return }
        onDropped(count)
    }
}

/// The log handler of `TracingDiagnostics.logger`.
struct DiagnosticsLogHandler: LogHandler {
    var base: any LogHandler
    let diagnostics: TracingDiagnostics
    var logLevel: Logger.Level {
        get { base.logLevel }
        set { base.logLevel = newValue }
    }
    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        let text = "\(event.message)"
        // swift-otel's batch span processor reports spans it dropped (queue full) with this text and their count.
        if text.hasPrefix("Spans were dropped") { diagnostics.dropped(event.metadata) }
        guard event.level >= .warning else { return base.log(event: event) }
        let (admitted, held) = diagnostics.admit(text)
        guard admitted else { return }
        var event = event
        if held > 0 { event.metadata = (event.metadata ?? [:]).merging(["held_back": .stringConvertible(held)]) { a, _ in a } }
        base.log(event: event)
    }
}
