import DTMCore

/// A fast path for the `Steps` field of a gRPC `DtmRequest`: the JSON text dtmgrpc sends for every saga
/// and msg (`[{"action":"…","compensate":"…"},…]`). JSONDecoder cost ~4% of a saga's CPU; this scanner
/// reads the common shape directly. It accepts only a strict subset — an array of `null` or of objects
/// whose values are strings (escapes other than `\u` allowed) — and returns nil for anything else, so the
/// caller falls back to JSONDecoder and every other input keeps JSONDecoder's exact result or error.
enum StepsJSONScanner {
    static func scan(_ text: String) -> [TransStep]? {
        var text = text
        return text.withUTF8 { bytes -> [TransStep]? in
            var scanner = Cursor(bytes: bytes)
            return scanner.steps()
        }
    }

    private struct Cursor {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0

        mutating func steps() -> [TransStep]? {
            guard consume(UInt8(ascii: "[")) else { return nil }
            var steps: [TransStep] = []
            if consume(UInt8(ascii: "]")) { return atEnd() ? steps : nil }
            repeat {
                guard let step = step() else { return nil }
                steps.append(step)
            } while consume(UInt8(ascii: ","))
            guard consume(UInt8(ascii: "]")), atEnd() else { return nil }
            return steps
        }

        /// `null` (a step with empty URLs, as the decoder's `[Step?]`) or an object of string values.
        private mutating func step() -> TransStep? {
            skipSpace()
            if bytes.count - i >= 4, bytes[i] == UInt8(ascii: "n"), bytes[i + 1] == UInt8(ascii: "u"),
                bytes[i + 2] == UInt8(ascii: "l"), bytes[i + 3] == UInt8(ascii: "l")
            {
                i += 4
                return TransStep(action: "", compensate: "")
            }
            guard consume(UInt8(ascii: "{")) else { return nil }
            var action: String?
            var compensate: String?
            if consume(UInt8(ascii: "}")) { return TransStep(action: "", compensate: "") }
            repeat {
                guard let key = string(), consume(UInt8(ascii: ":")), let value = string() else { return nil }
                // A repeated key is left to JSONDecoder, whose choice between the values is the reference.
                if key == "action" {
                    guard action == nil else { return nil }
                    action = value
                } else if key == "compensate" {
                    guard compensate == nil else { return nil }
                    compensate = value
                }
            } while consume(UInt8(ascii: ","))
            let step = TransStep(action: action ?? "", compensate: compensate ?? "")
            return consume(UInt8(ascii: "}")) ? step : nil
        }

        /// A string literal: valid UTF-8, no control characters, escapes other than `\u` decoded (Foundation's
        /// JSONEncoder writes `\/` in every URL). Nil for anything else.
        private mutating func string() -> String? {
            guard consume(UInt8(ascii: "\"")) else { return nil }
            let start = i
            var decoded: [UInt8]?  // only once an escape is seen
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: "\"") {
                    defer { i += 1 }
                    if let decoded { return String(validating: decoded, as: UTF8.self) }
                    return String(validating: bytes[start..<i], as: UTF8.self)
                }
                if b < 0x20 { return nil }
                if b == UInt8(ascii: "\\") {
                    guard i + 1 < bytes.count, let unescaped = Self.unescape(bytes[i + 1]) else { return nil }
                    if decoded == nil { decoded = Array(bytes[start..<i]) }
                    decoded!.append(unescaped)
                    i += 2
                    continue
                }
                decoded?.append(b)
                i += 1
            }
            return nil
        }

        /// The byte a two-character escape stands for; nil for `\u` (left to JSONDecoder) and invalid ones.
        private static func unescape(_ b: UInt8) -> UInt8? {
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): b
            case UInt8(ascii: "b"): 0x08
            case UInt8(ascii: "f"): 0x0C
            case UInt8(ascii: "n"): 0x0A
            case UInt8(ascii: "r"): 0x0D
            case UInt8(ascii: "t"): 0x09
            default: nil
            }
        }

        private mutating func consume(_ byte: UInt8) -> Bool {
            skipSpace()
            guard i < bytes.count, bytes[i] == byte else { return false }
            i += 1
            return true
        }

        private mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        private mutating func atEnd() -> Bool {
            skipSpace()
            return i == bytes.count
        }
    }
}
