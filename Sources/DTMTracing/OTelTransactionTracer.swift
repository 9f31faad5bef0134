package import DTMCore
import Tracing
import W3CTraceContext

/// The core's tracing port over a swift-distributed-tracing `Tracer` (swift-otel's in the server): spans with W3C
/// context in and out as header text.
struct OTelTransactionTracer<Backend: Tracer>: TransactionTracer {
    let tracer: Backend

    init(tracer: Backend) { self.tracer = tracer }

    func span(_ name: String, kind: TraceSpanKind, parent: TraceHeaders?, _ attributes: [String: TraceValue]) -> any TraceSpan {
        var context = ServiceContext.topLevel
        if let parent, Self.readable(parent.traceparent) {
            tracer.extract(parent, into: &context, using: TraceHeadersCarrier())
        }
        return start(name, kind: kind, context: context, attributes)
    }

    /// A span whose parent is in `context` (a span's own: children need no header text).
    func start(_ name: String, kind: TraceSpanKind, context: ServiceContext, _ attributes: [String: TraceValue]) -> any TraceSpan {
        let span = tracer.startSpan(name, context: context, ofKind: kind.spanKind)
        if span.isRecording { for (key, value) in attributes { span.attributes[key] = value.spanAttribute } }
        return OTelTraceSpan(span: span, tracer: self)
    }

    /// A `traceparent` the W3C format accepts: anything else starts a new trace instead of being passed on.
    static func readable(_ traceparent: String) -> Bool {
        (try? TraceContext(traceParentHeaderValue: traceparent)) != nil
    }
}

/// One span of `OTelTransactionTracer`.
final class OTelTraceSpan<Backend: Tracer>: TraceSpan {
    let span: any Span
    let tracer: OTelTransactionTracer<Backend>

    init(span: any Span, tracer: OTelTransactionTracer<Backend>) {
        self.span = span
        self.tracer = tracer
    }

    /// Written when asked (a branch call's span, once; a round's only for its log lines).
    var headers: TraceHeaders? {
        var headers = TraceHeaders(traceparent: "")
        tracer.tracer.inject(span.context, into: &headers, using: TraceHeadersCarrier())
        return headers.traceparent.isEmpty ? nil : headers
    }

    /// From `traceparent` (`00-<trace id>-<span id>-<flags>`), which the W3C propagator wrote.
    var logIDs: (traceID: String, spanID: String)? {
        guard let text = headers?.traceparent, let context = try? TraceContext(traceParentHeaderValue: text) else { return nil }
        return (context.traceID.description, context.spanID.description)
    }

    func set(_ key: String, _ value: TraceValue) {
        if span.isRecording { span.attributes[key] = value.spanAttribute }
    }

    func event(_ name: String, _ attributes: [String: TraceValue]) {
        guard span.isRecording else { return }
        var eventAttributes = SpanAttributes()
        for (key, value) in attributes { eventAttributes[key] = value.spanAttribute }
        span.addEvent(SpanEvent(name: name, attributes: eventAttributes))
    }

    func fail(_ message: String) {
        span.setStatus(SpanStatus(code: .error, message: message))
        span.end()
    }

    func succeed() {
        span.setStatus(SpanStatus(code: .ok))
        span.end()
    }

    func end() { span.end() }

    func child(_ name: String, kind: TraceSpanKind, _ attributes: [String: TraceValue]) -> any TraceSpan {
        tracer.start(name, kind: kind, context: span.context, attributes)
    }
}

/// `TraceHeaders` as the carrier of the W3C propagator.
struct TraceHeadersCarrier: Extractor, Injector {
    func extract(key: String, from carrier: TraceHeaders) -> String? {
        switch key.lowercased() {
        case TraceHeaders.traceparentName: carrier.traceparent
        case TraceHeaders.tracestateName: carrier.tracestate.isEmpty ? nil : carrier.tracestate
        default: nil
        }
    }

    func inject(_ value: String, forKey key: String, into carrier: inout TraceHeaders) {
        switch key.lowercased() {
        case TraceHeaders.traceparentName: carrier.traceparent = value
        case TraceHeaders.tracestateName: carrier.tracestate = value
        default: break
        }
    }
}

extension TraceSpanKind {
    var spanKind: SpanKind {
        switch self {
        case .server: .server
        case .client: .client
        case .internal: .internal
        }
    }
}

extension TraceValue {
    var spanAttribute: SpanAttribute {
        switch self {
        case .string(let text): .string(text)
        case .int(let number): .int64(number)
        }
    }
}
