package import DTMCore

/// The fast path of the saga and msg steps, `[{"action":"…","compensate":"…"},…]`, shared by the HTTP body
/// (`steps`) and the gRPC `Steps` text: JSONDecoder cost ~4 % of a saga's CPU there. It reads the strict subset of
/// `JSONCursor` and returns nil for anything else, so the caller's JSONDecoder keeps its exact result or error:
/// each step an object whose `action`, `compensate` and `data` (each at most once) are strings or null, other keys
/// with string or null values ignored as the decoders ignore them; with `nullSteps`, `null` for a step without URLs
/// (the gRPC decoder's `[Step?]`).
package enum StepsScanner {
    /// Reads steps at the cursor.
    package static func scan(_ c: inout JSONCursor, nullSteps: Bool) -> [TransStep]? {
        guard c.consume(UInt8(ascii: "[")) else { return nil }
        var steps: [TransStep] = []
        if c.consume(UInt8(ascii: "]")) { return steps }
        repeat {
            if nullSteps && c.null() {
                steps.append(TransStep(action: "", compensate: ""))
                continue
            }
            var action: String??
            var compensate: String??
            var data: String??
            let ok = c.object { key, c in
                guard let value = c.stringOrNull() else { return false }
                switch key {
                case "action":
                    guard action == nil else { return false }  // a repeated key is left to JSONDecoder
                    action = .some(value)
                case "compensate":
                    guard compensate == nil else { return false }
                    compensate = .some(value)
                case "data":
                    guard data == nil else { return false }
                    data = .some(value)
                default:
                    break
                }
                return true
            }
            guard ok else { return nil }
            steps.append(TransStep(action: (action ?? nil) ?? "", compensate: (compensate ?? nil) ?? "", data: data ?? nil))
        } while c.consume(UInt8(ascii: ","))
        return c.consume(UInt8(ascii: "]")) ? steps : nil
    }

    /// Steps that are the whole of `text`.
    package static func scan(_ text: String, nullSteps: Bool) -> [TransStep]? {
        var text = text
        return text.withUTF8 { bytes -> [TransStep]? in
            var c = JSONCursor(bytes)
            guard let steps = scan(&c, nullSteps: nullSteps), c.atEnd() else { return nil }
            return steps
        }
    }
}
