/// `ext_data` (DTM's `{"headers":{...}}`): headers stored with a transaction and sent with each of its branch calls
/// before `branch_headers` (spec §7.2). swift-dtm stores the trace context of the API call that created the
/// transaction here, as DTM stores its pass-through headers, so that later rounds continue that trace.
package struct TransactionExtData: Codable, Sendable, Equatable {
    package var headers: [String: String]?

    package init(trace: TraceHeaders) {
        var headers = [TraceHeaders.traceparentName: trace.traceparent]
        if !trace.tracestate.isEmpty { headers[TraceHeaders.tracestateName] = trace.tracestate }
        self.headers = headers
    }

    /// The stored headers (none when `ext_data` is empty).
    package static func headers(of text: String, coding: any TextCoding) throws -> [String: String] {
        guard !text.isEmpty else { return [:] }
        return try coding.decode(TransactionExtData.self, from: text).headers ?? [:]
    }

    /// The trace context among stored headers.
    package static func trace(in headers: [String: String]) -> TraceHeaders? {
        TraceHeaders.received(traceparent: headers[TraceHeaders.traceparentName], tracestate: headers[TraceHeaders.tracestateName])
    }
}
