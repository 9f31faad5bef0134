/// W3C trace context as header values (`traceparent`, `tracestate`): how a trace enters with a request, is stored
/// with its transaction, and leaves with each branch call. The core passes them on as text; the tracing adapter reads
/// and writes them.
package struct TraceHeaders: Sendable, Equatable {
    package var traceparent: String
    package var tracestate: String

    package init(traceparent: String, tracestate: String = "") {
        self.traceparent = traceparent
        self.tracestate = tracestate
    }

    /// The header names, lower-case as HTTP/2 and gRPC metadata require.
    package static let traceparentName = "traceparent"
    package static let tracestateName = "tracestate"

    /// The two headers, `tracestate` only when set.
    package var pairs: [(String, String)] {
        tracestate.isEmpty ? [(Self.traceparentName, traceparent)] : [(Self.traceparentName, traceparent), (Self.tracestateName, tracestate)]
    }

    /// The context a request brought, bounded as W3C allows (a `traceparent` of version 00 is 55 characters; a
    /// `tracestate` may be cut at 512): nil when there is none or it is longer, so nothing unbounded is stored.
    package static func received(traceparent: String?, tracestate: String?) -> TraceHeaders? {
        guard let traceparent, !traceparent.isEmpty, traceparent.utf8.count <= 128 else { return nil }
        let state = tracestate ?? ""
        return TraceHeaders(traceparent: traceparent, tracestate: state.utf8.count <= 512 ? state : "")
    }
}

/// Why a round runs, for its span: started by an API call (submit, abort), or by the cron loop, the first time or
/// after the transaction was backed off.
package enum RoundReason: String, Sendable {
    case submit
    case cron
    case retry
}

/// The kinds of span the coordinator makes (OpenTelemetry's).
package enum TraceSpanKind: Sendable {
    case server
    case client
    case `internal`
}

/// A span attribute's value.
package enum TraceValue: Sendable, Equatable {
    case string(String)
    case int(Int64)
}

/// One span, open until `end`. Implementations are thread-safe: a round's span is used from its branch calls' tasks.
package protocol TraceSpan: Sendable {
    /// The headers a request made inside this span carries: the span is its parent.
    var headers: TraceHeaders? { get }
    /// `trace_id` and `span_id` for log lines written inside the span (nil when it has no context to propagate).
    var logIDs: (traceID: String, spanID: String)? { get }
    func set(_ key: String, _ value: TraceValue)
    func event(_ name: String, _ attributes: [String: TraceValue])
    /// Ends the span with an error status and the text as its description.
    func fail(_ message: String)
    /// Ends the span with status OK.
    func succeed()
    /// Ends the span leaving its status unset.
    func end()
    /// A child span.
    func child(_ name: String, kind: TraceSpanKind, _ attributes: [String: TraceValue]) -> any TraceSpan
}

/// Makes spans (the tracing adapter; nil in `ProcessingContext` when tracing is off, so rounds pay nothing).
package protocol TransactionTracer: Sendable {
    /// A span whose parent is the context in `parent` (a request's or a stored transaction's), or a new trace's
    /// first span when there is none or it cannot be read.
    func span(_ name: String, kind: TraceSpanKind, parent: TraceHeaders?, _ attributes: [String: TraceValue]) -> any TraceSpan
}
