import DTMCore

/// A fast path for the `Steps` field of a gRPC `DtmRequest`: the JSON text dtmgrpc sends for every saga
/// and msg (`[{"action":"…","compensate":"…"},…]`). JSONDecoder cost ~4% of a saga's CPU; this scanner
/// reads the common shape directly. It accepts only a strict subset — an array of `null` or of objects
/// whose values are strings without escapes — and returns nil for anything else, so the caller falls
/// back to JSONDecoder and every other input keeps JSONDecoder's exact result or error.
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
                if key.elementsEqual("action".utf8) {
                    guard action == nil, let v = String(validating: value, as: UTF8.self) else { return nil }
                    action = v
                } else if key.elementsEqual("compensate".utf8) {
                    guard compensate == nil, let v = String(validating: value, as: UTF8.self) else { return nil }
                    compensate = v
                }
            } while consume(UInt8(ascii: ","))
            let step = TransStep(action: action ?? "", compensate: compensate ?? "")
            return consume(UInt8(ascii: "}")) ? step : nil
        }

        /// The bytes of a string without escapes or control characters; nil otherwise.
        private mutating func string() -> UnsafeBufferPointer<UInt8>.SubSequence? {
            guard consume(UInt8(ascii: "\"")) else { return nil }
            let start = i
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: "\"") {
                    defer { i += 1 }
                    return bytes[start..<i]
                }
                if b == UInt8(ascii: "\\") || b < 0x20 { return nil }
                i += 1
            }
            return nil
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
