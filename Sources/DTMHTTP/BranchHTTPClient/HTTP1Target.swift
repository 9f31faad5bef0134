import DTMCore
import NIOCore
import NIOHTTP1

/// Where a plain `http://` branch URL points: the pool key, the request target (path and query) and the Host
/// header, computed as AsyncHTTPClient computes them. Only URLs whose every byte is unambiguous are accepted
/// (ASCII, no fragment, no user info, no IPv6 literal, lower-case host name, valid percent escapes); anything else
/// returns nil and goes to AsyncHTTPClient, so the lean client never sends a different request than it would.
struct HTTP1Target: Sendable, Equatable {
    var endpoint: HTTP1Endpoint
    /// Path and query as sent in the request line (path "" → "/"), as AsyncHTTPClient's `URL.uri`.
    var uri: String
    /// `host` or `host:port` when the port is not 80, as AsyncHTTPClient's `addHostIfNeeded`.
    var hostHeader: String

    init?(_ url: String) {
        let bytes = Array(url.utf8)
        let scheme = Array("http://".utf8)
        guard bytes.count > scheme.count, bytes.starts(with: scheme) else { return nil }
        var i = scheme.count
        var hostEnd = i
        while hostEnd < bytes.count, bytes[hostEnd] != UInt8(ascii: "/"), bytes[hostEnd] != UInt8(ascii: "?") { hostEnd += 1 }
        var host = bytes[i..<hostEnd]
        var port = 80
        if let colon = host.lastIndex(of: UInt8(ascii: ":")) {
            let digits = host[(colon + 1)...]
            guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let p = Int(String(decoding: digits, as: UTF8.self)), p > 0, p <= 65535
            else { return nil }
            port = p
            host = host[..<colon]
        }
        guard !host.isEmpty, host.allSatisfy(Self.isHostByte) else { return nil }
        i = hostEnd
        let rest = bytes[i...]
        guard Self.isPlainTarget(rest) else { return nil }
        let hostString = String(decoding: host, as: UTF8.self)
        self.endpoint = HTTP1Endpoint(host: hostString, port: port)
        self.uri = rest.first == UInt8(ascii: "/") ? String(decoding: rest, as: UTF8.self) : "/" + String(decoding: rest, as: UTF8.self)
        self.hostHeader = port == 80 ? hostString : "\(hostString):\(port)"
    }

    /// Lower-case letters, digits, `-` and `.` (a DNS name or an IPv4 literal).
    private static func isHostByte(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
            || b == UInt8(ascii: "-") || b == UInt8(ascii: ".")
    }

    /// RFC 3986 unreserved, sub-delims, `:`, `@`, `/`, `?` and valid `%XX` escapes: bytes Foundation's URL takes as
    /// they are, so path and query go on the wire unchanged. No `#` (AsyncHTTPClient would drop the fragment).
    private static func isPlainTarget(_ s: ArraySlice<UInt8>) -> Bool {
        var i = s.startIndex
        while i < s.endIndex {
            let b = s[i]
            if b == UInt8(ascii: "%") {
                guard i + 2 < s.endIndex, isHex(s[i + 1]), isHex(s[i + 2]) else { return false }
                i += 3
                continue
            }
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"),
                UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
                UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="),
                UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "/"), UInt8(ascii: "?"):
                i += 1
            default:
                return false
            }
        }
        return true
    }

    private static func isHex(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
    }

    /// The request head AsyncHTTPClient would send: the given headers, then `host` unless one is present, then the
    /// framing (`Content-Length` and `Transfer-Encoding` removed; `Content-Length` added unless a GET, HEAD, DELETE,
    /// CONNECT or TRACE has no body).
    /// Nil when a header name or value is one AsyncHTTPClient refuses (the caller then lets it refuse it).
    func requestHead(method: HTTPMethod, headers: HTTPHeaders, bodyLength: Int) -> HTTPRequestHead? {
        var headers = headers
        for (name, value) in headers where !Self.isToken(name) || !Self.isFieldValue(value) { return nil }
        if !headers.contains(name: "host") { headers.add(name: "host", value: hostHeader) }
        headers.remove(name: "Content-Length")
        headers.remove(name: "Transfer-Encoding")
        switch (bodyLength, method) {
        case (0, .GET), (0, .HEAD), (0, .DELETE), (0, .CONNECT), (0, .TRACE): break
        default: headers.add(name: "Content-Length", value: String(bodyLength))
        }
        return HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)
    }

    /// A header name AsyncHTTPClient accepts: a non-empty RFC 9110 token (the rule submit checks too).
    private static func isToken(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy(Limits.isTokenByte)
    }

    /// A header value AsyncHTTPClient accepts: no control characters except HTAB.
    private static func isFieldValue(_ value: String) -> Bool {
        value.utf8.allSatisfy(Limits.isFieldValueByte)
    }
}

/// A pool key: one host name (or IPv4 literal) and port.
struct HTTP1Endpoint: Hashable, Sendable, CustomStringConvertible {
    var host: String
    var port: Int
    var description: String { "\(host):\(port)" }
}
