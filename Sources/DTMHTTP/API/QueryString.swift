import DTMCore

/// Splits a request target into path and decoded query parameters.
struct RequestTarget {
    var path: Substring
    var query: [(String, String)]

    init(_ uri: String) {
        if let q = uri.firstIndex(of: "?") {
            path = uri[..<q]
            query = RequestTarget.parse(uri[uri.index(after: q)...])
        } else {
            path = uri[...]
            query = []
        }
    }

    /// The path of a request target, without parsing its query.
    static func path(of uri: String) -> Substring {
        uri.firstIndex(of: "?").map { uri[..<$0] } ?? uri[...]
    }

    subscript(_ name: String) -> String? { query.first { $0.0 == name }?.1 }

    /// What to do with an integer query parameter above its range.
    enum Above { case refuse, clamp }

    /// The integer parameter `name`, checked against `range`: nil when absent or empty; a value that is not a
    /// decimal integer, or is out of range, is refused naming the parameter and the range — except that with
    /// `.clamp` a value above the range (however many digits) becomes its upper bound. The only way query
    /// integers are read, so no parameter reaches arithmetic unchecked.
    func integer(_ name: String, in range: ClosedRange<Int64>, above: Above = .refuse) throws(DTMError) -> Int64? {
        guard let text = self[name], !text.isEmpty else { return nil }
        let value: Int64
        if let v = Int64(text) {
            value = v
        } else if above == .clamp, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            value = .max  // more digits than Int64 holds: far above any range
        } else {
            throw .invalidArgument("\(name) must be an integer, got '\(text.prefix(32))'")
        }
        if value > range.upperBound && above == .clamp { return range.upperBound }
        guard range.contains(value) else {
            throw .invalidArgument("\(name) is \(value); it must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return value
    }

    static func parse(_ s: Substring) -> [(String, String)] {
        s.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            if let eq = pair.firstIndex(of: "=") {
                return (decode(pair[..<eq]), decode(pair[pair.index(after: eq)...]))
            }
            return (decode(pair), "")
        }
    }

    /// Percent-decoding with `+` as space; malformed escapes are kept literally.
    static func decode(_ s: Substring) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else if b == UInt8(ascii: "%"), it.count >= 2, let hi = hex(it[it.startIndex]), let lo = hex(it[it.startIndex + 1]) {
                out.append(hi << 4 | lo)
                it = it.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
func percentEncode(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    let hex = Array("0123456789ABCDEF".utf8)
    for b in s.utf8 {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
            out.unicodeScalars.append(UnicodeScalar(b))
        default:
            out.unicodeScalars.append("%")
            out.unicodeScalars.append(UnicodeScalar(hex[Int(b >> 4)]))
            out.unicodeScalars.append(UnicodeScalar(hex[Int(b & 0xf)]))
        }
    }
    return out
}
