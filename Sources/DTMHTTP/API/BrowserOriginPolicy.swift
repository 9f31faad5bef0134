/// Keeps a web page that an operator opens from using the operator's browser against the HTTP API (README,
/// Security). DTM's clients (dtmcli for Go and Python, curl, grpcio) send neither `Origin` nor `Sec-Fetch-*`
/// headers, so nothing here changes what they may do; browsers send them on every request to the API.
///
/// - Cross-site requests: on `/api/*`, a `Sec-Fetch-Site` of `cross-site` or `same-site`, or an `Origin` whose
///   host and port differ from the request's `Host`, is refused. A form or `fetch` with `Content-Type:
///   text/plain` needs no CORS preflight, so without this a page could force-stop transactions.
/// - DNS rebinding: a page on `rebind.example` whose name later resolves to this server sends same-origin requests
///   with `Host: rebind.example`. The `Host` must therefore be an IP literal, a `localhost` name, or a name in
///   `AllowedHosts`. With `AllowedHosts` empty and the listener on all interfaces, other names are still accepted
///   from clients that send no browser headers, so a deployment reached by a service name (`dtm:36789`) keeps
///   working; with the listener on loopback only loopback names are accepted from anyone. `AllowedHosts: *`
///   turns the host check off.
package struct BrowserOriginPolicy: Sendable, Equatable {
    enum HostRule: Sendable, Equatable {
        /// `AllowedHosts` empty, listener on loopback: IP literals and `localhost` names only, for every client.
        case loopbackOnly
        /// `AllowedHosts` empty, listener on other interfaces: any name from non-browsers, IP literals and
        /// `localhost` names from browsers.
        case namesFromNonBrowsers
        /// `AllowedHosts` set: IP literals, `localhost` names and these names (lowercased, no trailing dot;
        /// a leading `*.` matches any subdomain), for every client.
        case listed([String])
        /// `AllowedHosts: *`.
        case any
    }

    let hostRule: HostRule

    /// `allowedHosts`: the `AllowedHosts` entries (host names, without ports); `listenHost`: the address the
    /// listeners bind.
    package init(allowedHosts: [String], listenHost: String) {
        let names = allowedHosts.map { Self.normalizedName($0) }.filter { !$0.isEmpty }
        if names.contains("*") {
            hostRule = .any
        } else if !names.isEmpty {
            hostRule = .listed(names)
        } else if Self.isLoopback(listenHost) {
            hostRule = .loopbackOnly
        } else {
            hostRule = .namesFromNonBrowsers
        }
    }

    /// Any `Host`; the cross-site checks still apply (`AllowedHosts: *`).
    package static let anyHost = BrowserOriginPolicy(hostRule: .any)

    private init(hostRule: HostRule) { self.hostRule = hostRule }

    /// The headers a refusal depends on.
    package struct Headers: Sendable, Equatable {
        package var host: String?
        package var origin: String?
        package var fetchSite: String?
        /// Any `Sec-Fetch-*` or `Origin` header: the request comes from a browser.
        package var fromBrowser: Bool

        package init(host: String? = nil, origin: String? = nil, fetchSite: String? = nil, fromBrowser: Bool = false) {
            self.host = host
            self.origin = origin
            self.fetchSite = fetchSite
            self.fromBrowser = fromBrowser || origin != nil || fetchSite != nil
        }
    }

    /// Why the request is refused (a 403 message naming the header), or nil.
    package func refusal(path: Substring, headers: Headers) -> String? {
        if let host = headers.host, !acceptsHost(host, fromBrowser: headers.fromBrowser) {
            return "Host '\(host.prefix(128))' is not an allowed name of this server: add it to AllowedHosts (DNS rebinding protection)"
        }
        guard path.hasPrefix("/api/") else { return nil }
        if let site = headers.fetchSite?.lowercased(), site == "cross-site" || site == "same-site" {
            return "cross-site request refused (Sec-Fetch-Site: \(site.prefix(32)))"
        }
        if let origin = headers.origin {
            guard let host = headers.host, let originAuthority = Self.authority(ofOrigin: origin),
                originAuthority == Self.normalizedAuthority(host, defaultPorts: [":80", ":443"])
            else {
                return "cross-origin request refused (Origin: \(origin.prefix(128)))"
            }
        }
        return nil
    }

    func acceptsHost(_ host: String, fromBrowser: Bool) -> Bool {
        let name = Self.hostName(of: host)
        if Self.isIPLiteral(name) || Self.isLocalhostName(name) { return true }
        switch hostRule {
        case .any: return true
        case .loopbackOnly: return false
        case .namesFromNonBrowsers: return !fromBrowser
        case .listed(let names):
            return names.contains { entry in
                if entry.hasPrefix("*.") { return name.hasSuffix(entry.dropFirst()) }
                return name == entry
            }
        }
    }

    /// The host name of a `Host` value: lowercased, without port and trailing dot; IPv6 literals keep brackets.
    static func hostName(of host: String) -> String {
        var value = Substring(host.lowercased())
        if value.hasPrefix("[") {
            if let end = value.firstIndex(of: "]") { return String(value[...end]) }
            return String(value)
        }
        if let colon = value.lastIndex(of: ":") { value = value[..<colon] }
        return normalizedName(String(value))
    }

    static func normalizedName(_ name: String) -> String {
        var n = Substring(name.lowercased())
        while n.hasSuffix(".") { n = n.dropLast() }
        return String(n)
    }

    /// `host[:port]` of an `Origin` value (`scheme://host[:port]`), lowercased, default port of its scheme dropped.
    static func authority(ofOrigin origin: String) -> String? {
        let lower = origin.lowercased()
        let scheme: String
        if lower.hasPrefix("http://") {
            scheme = "http"
        } else if lower.hasPrefix("https://") {
            scheme = "https"
        } else {
            return nil  // "null" (sandboxed frames, file: pages) and other schemes
        }
        let rest = lower.dropFirst(scheme.count + 3)
        guard !rest.isEmpty, !rest.contains("/"), !rest.contains("@") else { return nil }
        return normalizedAuthority(String(rest), defaultPorts: [scheme == "http" ? ":80" : ":443"])
    }

    static func normalizedAuthority(_ authority: String, defaultPorts: [String]) -> String {
        var a = authority.lowercased()
        for port in defaultPorts where a.hasSuffix(port) {
            a.removeLast(port.count)
            break
        }
        if a.hasSuffix(".") { a.removeLast() }
        return a
    }

    static func isLocalhostName(_ name: String) -> Bool { name == "localhost" || name.hasSuffix(".localhost") }

    /// An IPv4 dotted quad or a bracketed IPv6 literal: names an attacker's DNS cannot rebind.
    static func isIPLiteral(_ name: String) -> Bool {
        if name.hasPrefix("[") && name.hasSuffix("]") { return name.count > 2 }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in p.count >= 1 && p.count <= 3 && p.allSatisfy(\.isASCIIDigit) && Int(p).map { $0 <= 255 } == true }
    }

    static func isLoopback(_ listenHost: String) -> Bool {
        let name = listenHost.lowercased()
        return name == "localhost" || name == "::1" || name == "[::1]" || name.hasPrefix("127.")
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
