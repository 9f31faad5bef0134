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

    subscript(_ name: String) -> String? { query.first { $0.0 == name }?.1 }

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
