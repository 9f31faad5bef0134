package import DTMCore
import Synchronization

/// The tests' tracer: keeps every span it made, with its parent, attributes, events and how it ended. Span ids are
/// 1, 2, 3… (16 hex digits); a span without a readable parent starts trace 1, 2, 3… (32 hex digits).
package final class RecordingTracer: TransactionTracer {
    package struct Record: Sendable, Equatable {
        package var name: String
        package var kind: TraceSpanKind
        package var traceID: String
        package var spanID: String
        /// The parent's span id, or "" for a trace's first span.
        package var parentID: String
        package var attributes: [String: TraceValue]
        package var events: [String]
        /// "ok", "error: <text>" or "unset" once ended; nil while open.
        package var ended: String?
    }

    private let state = Mutex<(records: [Record], traces: Int)>(([], 0))

    package init() {}

    package var spans: [Record] { state.withLock { $0.records } }

    package func spans(named name: String) -> [Record] { spans.filter { $0.name == name } }

    package func span(_ name: String, kind: TraceSpanKind, parent: TraceHeaders?, _ attributes: [String: TraceValue]) -> any TraceSpan {
        let parts = parent?.traceparent.split(separator: "-") ?? []
        return state.withLock { s in
            let traceID: String
            let parentID: String
            if parts.count == 4, parts[1].count == 32, parts[2].count == 16 {
                traceID = String(parts[1])
                parentID = String(parts[2])
            } else {
                s.traces += 1
                traceID = Self.hex(s.traces, digits: 32)
                parentID = ""
            }
            let index = s.records.count
            let spanID = Self.hex(index + 1, digits: 16)
            s.records.append(
                Record(name: name, kind: kind, traceID: traceID, spanID: spanID, parentID: parentID, attributes: attributes, events: [], ended: nil))
            return RecordedSpan(tracer: self, index: index, headers: TraceHeaders(traceparent: "00-\(traceID)-\(spanID)-01"))
        }
    }

    fileprivate func update(_ index: Int, _ change: (inout Record) -> Void) {
        state.withLock { change(&$0.records[index]) }
    }

    private static func hex(_ value: Int, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}

private struct RecordedSpan: TraceSpan {
    let tracer: RecordingTracer
    let index: Int
    let headers: TraceHeaders?

    var logIDs: (traceID: String, spanID: String)? {
        let parts = headers?.traceparent.split(separator: "-") ?? []
        return parts.count == 4 ? (String(parts[1]), String(parts[2])) : nil
    }

    func set(_ key: String, _ value: TraceValue) { tracer.update(index) { $0.attributes[key] = value } }
    func event(_ name: String, _ attributes: [String: TraceValue]) { tracer.update(index) { $0.events.append(name) } }
    func fail(_ message: String) { tracer.update(index) { $0.ended = "error: \(message)" } }
    func succeed() { tracer.update(index) { $0.ended = "ok" } }
    func end() { tracer.update(index) { $0.ended = "unset" } }

    func child(_ name: String, kind: TraceSpanKind, _ attributes: [String: TraceValue]) -> any TraceSpan {
        tracer.span(name, kind: kind, parent: headers, attributes)
    }
}
