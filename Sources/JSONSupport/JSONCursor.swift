/// A forward reader over JSON text for the fast paths that decode the common shapes of request bodies without
/// JSONDecoder (whose generic machinery cost 4–7 % of a saga's CPU).
///
/// Every reader accepts only a strict subset of JSON and returns nil (or false) for anything else; its caller
/// then falls back to JSONDecoder, so every input outside the subset keeps JSONDecoder's exact result or error.
/// The subset: strings of valid UTF-8 without control characters, escapes other than `\u` (Foundation's
/// JSONEncoder writes `\/` in every URL); `null`, `true`, `false`; integers without fraction, exponent or
/// leading zero that fit an `Int64`.
package struct JSONCursor {
    package let bytes: UnsafeBufferPointer<UInt8>
    package private(set) var index = 0

    package init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// Skips white space and consumes `byte` if it comes next.
    package mutating func consume(_ byte: UInt8) -> Bool {
        skipSpace()
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    /// Whether only white space is left.
    package mutating func atEnd() -> Bool {
        skipSpace()
        return index == bytes.count
    }

    /// Whether the next value is `null` (consumed if so).
    package mutating func null() -> Bool { literal("null") }

    /// `true` or `false`; nil (nothing consumed) for anything else.
    package mutating func bool() -> Bool? {
        if literal("true") { return true }
        if literal("false") { return false }
        return nil
    }

    /// An integer in the subset; nil for anything else.
    package mutating func int64() -> Int64? {
        skipSpace()
        var i = index
        let negative = i < bytes.count && bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        let start = i
        var value: Int64 = 0
        while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
            let digit = Int64(bytes[i] - 0x30)
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = negative ? times10.subtractingReportingOverflow(digit) : times10.addingReportingOverflow(digit)
            guard !o1, !o2 else { return nil }
            value = next
            i += 1
        }
        guard i > start, !(bytes[start] == 0x30 && i - start > 1) else { return nil }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") || bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            return nil
        }
        index = i
        return value
    }

    /// A string literal in the subset; nil for anything else.
    package mutating func string() -> String? {
        guard consume(UInt8(ascii: "\"")) else { return nil }
        let start = index
        var decoded: [UInt8]?  // only once an escape is seen
        while index < bytes.count {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                defer { index += 1 }
                if let decoded { return String(validating: decoded, as: UTF8.self) }
                return String(validating: bytes[start..<index], as: UTF8.self)
            }
            if b < 0x20 { return nil }
            if b == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count, let unescaped = Self.unescape(bytes[index + 1]) else { return nil }
                if decoded == nil { decoded = Array(bytes[start..<index]) }
                decoded!.append(unescaped)  // set on the line above
                index += 2
                continue
            }
            decoded?.append(b)
            index += 1
        }
        return nil
    }

    /// A string, or nil for `null`; `.none` when the next value is neither (or outside the subset).
    package mutating func stringOrNull() -> String?? {
        if null() { return .some(nil) }
        guard let s = string() else { return .none }
        return .some(s)
    }

    /// `[` string, … `]`; nil for anything else (a `null` element included).
    package mutating func stringArray() -> [String]? {
        guard consume(UInt8(ascii: "[")) else { return nil }
        var out: [String] = []
        if consume(UInt8(ascii: "]")) { return out }
        repeat {
            guard let s = string() else { return nil }
            out.append(s)
        } while consume(UInt8(ascii: ","))
        return consume(UInt8(ascii: "]")) ? out : nil
    }

    /// `{` "key": string, … `}`; nil for anything else (a repeated key or a `null` value included).
    package mutating func stringObject() -> [String: String]? {
        var out: [String: String] = [:]
        let ok = object { key, cursor in
            guard out[key] == nil, let value = cursor.string() else { return false }
            out[key] = value
            return true
        }
        return ok ? out : nil
    }

    /// An object whose members `member` reads (it is handed each key with the cursor before the value, and returns
    /// false to give up). False when the object is malformed or `member` gave up.
    package mutating func object(_ member: (String, inout JSONCursor) -> Bool) -> Bool {
        guard consume(UInt8(ascii: "{")) else { return false }
        if consume(UInt8(ascii: "}")) { return true }
        repeat {
            guard let key = string(), consume(UInt8(ascii: ":")), member(key, &self) else { return false }
        } while consume(UInt8(ascii: ","))
        return consume(UInt8(ascii: "}"))
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        skipSpace()
        let n = word.utf8CodeUnitCount
        guard bytes.count - index >= n else { return false }
        let w = word.utf8Start
        for k in 0..<n where bytes[index + k] != w[k] { return false }
        // `nullx` or `true1` is not a literal.
        if index + n < bytes.count, Self.isWordByte(bytes[index + n]) { return false }
        index += n
        return true
    }

    private static func isWordByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A)
    }

    /// The byte a two-character escape stands for; nil for `\u` (outside the subset) and invalid ones.
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

    private mutating func skipSpace() {
        while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 {
            index += 1
        }
    }
}
