/// Where a branch URL points — scheme, host and port — read by the one parser that both the host allow-list and
/// the transports use, so that what is checked is exactly what is dialled.
///
/// Forms: `scheme://authority/rest` (`http`, `https`, and discovery schemes such as `etcd`), or a bare gRPC target
/// `host:port/pkg.Service/Method` (DTM splits it at the first `/`). A scheme is only recognised at the very start
/// (`[A-Za-z][A-Za-z0-9+.-]*://`): a `://` later in the text is part of the path. The authority is refused when
/// it is ambiguous: user info (`@`), percent escapes, a zone id, or any byte outside a DNS name, an IPv4 literal
/// or a bracketed IPv6 literal.
package struct BranchAddress: Sendable, Equatable {
    /// Lower-cased scheme, or "" for a bare gRPC target.
    package var scheme: String
    /// Lower-cased host without a trailing dot; an IPv6 literal in canonical form, without brackets.
    package var host: String
    /// The explicit port, if any.
    package var port: Int?
    /// Everything after the authority (path, query, fragment), as given.
    package var rest: Substring

    package init(scheme: String, host: String, port: Int?, rest: Substring) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.rest = rest
    }

    /// The port a connection goes to: the explicit one, else 80 for `http` and 443 for `https`.
    package var effectivePort: Int? {
        if let port { return port }
        switch scheme {
        case "http": return 80
        case "https": return 443
        default: return nil
        }
    }

    package var isIPv6: Bool { host.utf8.contains(UInt8(ascii: ":")) }

    /// `host:port` (IPv6 in brackets), or just the host when there is no explicit port: what is dialled.
    package var authority: String {
        let h = isIPv6 ? "[\(host)]" : host
        return port.map { "\(h):\($0)" } ?? h
    }

    package static func parse(_ url: String) throws(DTMError) -> BranchAddress {
        let bytes = Array(url.utf8)
        var start = 0
        var scheme = ""
        if let end = schemeEnd(bytes) {
            scheme = String(decoding: bytes[0..<end], as: UTF8.self).lowercased()
            start = end + 3
        }
        var end = start
        while end < bytes.count, bytes[end] != UInt8(ascii: "/"), bytes[end] != UInt8(ascii: "?"), bytes[end] != UInt8(ascii: "#") {
            end += 1
        }
        let (host, port) = try parseAuthority(bytes[start..<end], in: url)
        let restStart = url.utf8.index(url.utf8.startIndex, offsetBy: end)
        return BranchAddress(scheme: scheme, host: host, port: port, rest: Substring(url.utf8[restStart...]))
    }

    /// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal, normalised as in a URL: allow-list entries
    /// and hosts read by other parsers.
    package static func parseAuthority(_ text: String) throws(DTMError) -> (host: String, port: Int?) {
        let bytes = Array(text.utf8)
        if bytes.filter({ $0 == UInt8(ascii: ":") }).count >= 2, bytes.first != UInt8(ascii: "[") {
            guard let v6 = IPv6.canonical(bytes[...]) else { throw .invalidArgument("'\(text.prefix(64))' is not an IPv6 address") }
            return (v6, nil)
        }
        return try parseAuthority(bytes[...], in: text)
    }

    /// The end of a leading `scheme` followed by `://`, or nil.
    private static func schemeEnd(_ b: [UInt8]) -> Int? {
        guard let first = b.first, isLetter(first) else { return nil }
        var i = 1
        while i < b.count, isLetter(b[i]) || isDigit(b[i]) || b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: ".") {
            i += 1
        }
        guard i + 2 < b.count, b[i] == UInt8(ascii: ":"), b[i + 1] == UInt8(ascii: "/"), b[i + 2] == UInt8(ascii: "/") else { return nil }
        return i
    }

    private static func parseAuthority(_ a: ArraySlice<UInt8>, in url: String) throws(DTMError) -> (host: String, port: Int?) {
        func bad(_ why: String) -> DTMError { .invalidArgument("url '\(url.prefix(128))': \(why)") }
        if a.isEmpty { throw bad("no host") }
        if a.contains(UInt8(ascii: "@")) { throw bad("user info ('@') is not accepted in a branch url") }
        var hostPart = a
        var portPart: ArraySlice<UInt8>?
        if a.first == UInt8(ascii: "[") {
            guard let close = a.firstIndex(of: UInt8(ascii: "]")) else { throw bad("'[' without ']'") }
            hostPart = a[(a.startIndex + 1)..<close]
            let after = a[(close + 1)...]
            if !after.isEmpty {
                guard after.first == UInt8(ascii: ":") else { throw bad("unexpected text after ']'") }
                portPart = after.dropFirst()
            }
            guard let v6 = IPv6.canonical(hostPart) else { throw bad("'\(String(decoding: hostPart, as: UTF8.self).prefix(64))' is not an IPv6 address") }
            return (v6, try portPart.map { p throws(DTMError) in try port(p, bad) })
        }
        if let colon = a.firstIndex(of: UInt8(ascii: ":")) {
            hostPart = a[..<colon]
            portPart = a[(colon + 1)...]
        }
        if hostPart.last == UInt8(ascii: ".") { hostPart = hostPart.dropLast() }
        guard !hostPart.isEmpty else { throw bad("no host") }
        guard hostPart.count <= 253 else { throw bad("the host is longer than a DNS name can be (253 bytes)") }
        guard hostPart.allSatisfy(isHostByte), hostPart.first != UInt8(ascii: ".") else {
            throw bad("the host may hold only letters, digits, '-', '_' and '.'")
        }
        let host = String(decoding: hostPart, as: UTF8.self).lowercased()
        return (host, try portPart.map { p throws(DTMError) in try port(p, bad) })
    }

    private static func port(_ p: ArraySlice<UInt8>, _ bad: (String) -> DTMError) throws(DTMError) -> Int {
        guard !p.isEmpty, p.count <= 5, p.allSatisfy(isDigit), let n = Int(String(decoding: p, as: UTF8.self)), (1...65535).contains(n) else {
            throw bad("the port must be a number from 1 to 65535")
        }
        return n
    }

    private static func isLetter(_ b: UInt8) -> Bool { (b | 0x20) >= UInt8(ascii: "a") && (b | 0x20) <= UInt8(ascii: "z") }
    private static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
    private static func isHostByte(_ b: UInt8) -> Bool {
        isLetter(b) || isDigit(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
    }
}

/// IPv6 literals in the canonical text form of RFC 5952 (lower case, longest run of zero groups as `::`), so that
/// two spellings of one address compare equal.
enum IPv6 {
    static func canonical(_ text: ArraySlice<UInt8>) -> String? {
        guard let groups = parse(text) else { return nil }
        // Longest run of two or more zero groups.
        var bestStart = -1, bestLength = 0, i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8 && groups[j] == 0 { j += 1 }
                if j - i > bestLength && j - i >= 2 { bestStart = i; bestLength = j - i }
                i = j
            } else {
                i += 1
            }
        }
        func hex(_ range: Range<Int>) -> String { range.map { String(groups[$0], radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    /// Eight 16-bit groups; a trailing dotted IPv4 part is accepted. No zone id.
    private static func parse(_ text: ArraySlice<UInt8>) -> [UInt16]? {
        let s = String(decoding: text, as: UTF8.self)
        guard !s.isEmpty, s.utf8.allSatisfy({ isHex($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }) else { return nil }
        let doubleColons = s.ranges(of: "::")
        guard doubleColons.count <= 1 else { return nil }
        let halves = doubleColons.first.map { [String(s[..<$0.lowerBound]), String(s[$0.upperBound...])] } ?? [s]
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if piece.contains(".") {
                    guard index == pieces.count - 1, let v4 = ipv4(piece) else { return nil }
                    out += v4
                } else {
                    guard (1...4).contains(piece.utf8.count), let g = UInt16(piece, radix: 16) else { return nil }
                    out.append(g)
                }
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 { return head.count == 8 ? head : nil }
        guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
        return head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
    }

    private static func ipv4(_ s: Substring) -> [UInt16]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt16] = []
        for p in parts {
            guard (1...3).contains(p.utf8.count), p.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = UInt16(p), v <= 255 else { return nil }
            bytes.append(v)
        }
        return [bytes[0] << 8 | bytes[1], bytes[2] << 8 | bytes[3]]
    }

    private static func isHex(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || ((b | 0x20) >= UInt8(ascii: "a") && (b | 0x20) <= UInt8(ascii: "f"))
    }
}
