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

    /// Host and port come from `BranchAddress` (what the allow-list checked); the URL is taken only when its
    /// authority is already written in that normal form and its host is a DNS name or IPv4 literal.
    init?(_ url: String) {
        guard url.utf8.starts(with: "http://".utf8), let address = try? BranchAddress.parse(url), !address.isIPv6,
            !address.host.utf8.contains(UInt8(ascii: "_"))
        else { return nil }
        let rest = Array(address.rest.utf8)[...]
        let written = url.utf8.dropFirst(7).dropLast(rest.count)
        guard written.elementsEqual(address.authority.utf8), Self.isPlainTarget(rest) else { return nil }
        let port = address.effectivePort ?? 80
        self.endpoint = HTTP1Endpoint(host: address.host, port: port)
        self.uri = rest.first == UInt8(ascii: "/") ? String(decoding: rest, as: UTF8.self) : "/" + String(decoding: rest, as: UTF8.self)
        self.hostHeader = port == 80 ? address.host : "\(address.host):\(port)"
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
