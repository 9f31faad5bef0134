import DTMCore
import JSONSupport

/// A fast path for the `Steps` field of a gRPC `DtmRequest`: the JSON text dtmgrpc sends for every saga
/// and msg (`[{"action":"…","compensate":"…"},…]`). JSONDecoder cost ~4% of a saga's CPU; this scanner
/// reads the common shape directly. It accepts only a strict subset — an array of `null` or of objects
/// whose values are strings in `JSONCursor`'s subset — and returns nil for anything else, so the caller
/// falls back to JSONDecoder and every other input keeps JSONDecoder's exact result or error.
enum StepsJSONScanner {
    static func scan(_ text: String) -> [TransStep]? {
        var text = text
        return text.withUTF8 { bytes -> [TransStep]? in
            var cursor = JSONCursor(bytes)
            guard cursor.consume(UInt8(ascii: "[")) else { return nil }
            var steps: [TransStep] = []
            if cursor.consume(UInt8(ascii: "]")) { return cursor.atEnd() ? steps : nil }
            repeat {
                guard let step = step(&cursor) else { return nil }
                steps.append(step)
            } while cursor.consume(UInt8(ascii: ","))
            guard cursor.consume(UInt8(ascii: "]")), cursor.atEnd() else { return nil }
            return steps
        }
    }

    /// `null` (a step with empty URLs, as the decoder's `[Step?]`) or an object of string values.
    private static func step(_ cursor: inout JSONCursor) -> TransStep? {
        if cursor.null() { return TransStep(action: "", compensate: "") }
        var action: String?
        var compensate: String?
        let ok = cursor.object { key, cursor in
            guard let value = cursor.string() else { return false }
            // A repeated key is left to JSONDecoder, whose choice between the values is the reference.
            if key == "action" {
                guard action == nil else { return false }
                action = value
            } else if key == "compensate" {
                guard compensate == nil else { return false }
                compensate = value
            }
            return true
        }
        return ok ? TransStep(action: action ?? "", compensate: compensate ?? "") : nil
    }
}
