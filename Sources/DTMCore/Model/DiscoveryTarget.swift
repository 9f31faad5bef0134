/// A go-zero service-discovery target: the etcd hosts and the key under which a service's instances are registered.
///
/// Forms, as go-zero builds and reads them (scheme `etcd` or `discov`, same meaning):
/// - `etcd://h1:2379,h2:2379/user.rpc` — hosts in the authority, the key as the path;
/// - `etcd:///h1:2379,h2:2379?key=user.rpc` — empty authority, hosts as the first path segment, the key in the query.
///
/// A gRPC branch URL is a target followed by the method, split as DTM splits it (after the second path segment):
/// `etcd://127.0.0.1:2379/user.rpc/user.UserService/UserCreate` → target `etcd://127.0.0.1:2379/user.rpc`, method
/// `/user.UserService/UserCreate`; with the empty-authority form, `etcd:///h1:2379/user.UserService/UserCreate?key=user.rpc`.
/// `?user=U&password=P` are etcd credentials (a coordinator's `MicroService.Target`).
package struct DiscoveryTarget: Sendable, Hashable {
    /// etcd endpoints, `host:port` (IPv6 in brackets), in the order given; port 2379 when none is written.
    package var hosts: [String]
    /// The key prefix of the service (`user.rpc`): instances are the keys under `user.rpc/`.
    package var key: String
    package var user: String = ""
    package var password: String = ""

    package static let maxHosts = 16
    package static let maxKeyLength = 256

    package init(hosts: [String], key: String, user: String = "", password: String = "") {
        self.hosts = hosts
        self.key = key
        self.user = user
        self.password = password
    }

    /// The etcd cluster, as one string: targets naming the same hosts in the same order share one etcd client.
    package var cluster: String { hosts.joined(separator: ",") }

    /// `etcd://hosts/key`, without credentials: the name of the service in logs and caches.
    package var server: String { "etcd://\(cluster)/\(key)" }

    /// True for a URL with a discovery scheme (`etcd://`, `discov://`, any case). Without allocating: every gRPC
    /// branch call asks.
    package static func isDiscoveryURL(_ url: String) -> Bool {
        func starts(with scheme: StaticString) -> Bool {
            var u = url.utf8.makeIterator()
            return scheme.withUTF8Buffer { expected in
                expected.allSatisfy { e in
                    guard let b = u.next() else { return false }
                    return b == e || (e >= UInt8(ascii: "a") && e <= UInt8(ascii: "z") && b == e - 32)
                }
            }
        }
        return starts(with: "etcd://") || starts(with: "discov://")
    }

    /// A coordinator's `MicroService.Target` (no method).
    package static func parse(_ text: String) throws(DTMError) -> DiscoveryTarget {
        let (target, rest) = try parseURL(text)
        guard rest.isEmpty else {
            throw .invalidArgument("discovery target '\(text.prefix(128))': unexpected path '\(rest.prefix(64))' after the key")
        }
        return target
    }

    /// A gRPC branch URL: the target and the method path (`/pkg.Service/Method`).
    package static func parseBranchURL(_ url: String) throws(DTMError) -> (target: DiscoveryTarget, method: String) {
        let (target, method) = try parseURL(url)
        guard method.utf8.count > 1, !method.hasSuffix("/") else {
            throw .invalidArgument(
                "gRPC branch url '\(url.prefix(128))': no method after the service key (want etcd://host:2379/service.rpc/package.Service/Method)")
        }
        return (target, method)
    }

    /// The target and what follows it in the path.
    private static func parseURL(_ url: String) throws(DTMError) -> (DiscoveryTarget, String) {
        func bad(_ why: String) -> DTMError { .invalidArgument("discovery url '\(url.prefix(128))': \(why)") }
        guard isDiscoveryURL(url), let separator = url.firstRange(of: "://") else { throw bad("the scheme must be etcd:// or discov://") }
        var remainder = url[separator.upperBound...]
        var query = Substring("")
        if let q = remainder.firstIndex(of: "?") {
            query = remainder[remainder.index(after: q)...]
            remainder = remainder[..<q]
        }
        if remainder.contains("#") { throw bad("a fragment ('#') is not accepted") }
        let parameters = try parseQuery(query, bad)
        let authority: Substring
        var path: Substring
        if remainder.hasPrefix("/") {
            // Empty authority: the hosts are the first path segment, the key is in the query.
            let afterSlash = remainder.dropFirst()
            let end = afterSlash.firstIndex(of: "/") ?? afterSlash.endIndex
            authority = afterSlash[..<end]
            path = afterSlash[end...]
        } else {
            let end = remainder.firstIndex(of: "/") ?? remainder.endIndex
            authority = remainder[..<end]
            path = remainder[end...]
        }
        let hosts = try parseHosts(authority, bad)
        var key: Substring
        if let fromQuery = parameters["key"] {
            key = Substring(fromQuery)
        } else {
            guard path.hasPrefix("/") else { throw bad("no service key (want etcd://host:2379/key)") }
            path = path.dropFirst()
            let end = path.firstIndex(of: "/") ?? path.endIndex
            key = path[..<end]
            path = path[end...]
        }
        guard !key.isEmpty else { throw bad("the service key is empty") }
        guard key.utf8.count <= maxKeyLength else { throw bad("the service key is longer than \(maxKeyLength) bytes") }
        guard key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }) else {
            throw bad("the service key may hold only printable ASCII without spaces or '/'")
        }
        let target = DiscoveryTarget(
            hosts: hosts, key: String(key), user: parameters["user"] ?? "", password: parameters["password"] ?? "")
        return (target, String(path))
    }

    private static func parseHosts(_ authority: Substring, _ bad: (String) -> DTMError) throws(DTMError) -> [String] {
        let parts = authority.split(separator: ",", omittingEmptySubsequences: false)
        guard !authority.isEmpty, !parts.isEmpty else { throw bad("no etcd host") }
        guard parts.count <= maxHosts else { throw bad("more than \(maxHosts) etcd hosts") }
        var hosts: [String] = []
        for part in parts {
            guard !part.isEmpty else { throw bad("an empty etcd host in the list") }
            let (host, port): (String, Int?)
            do {
                (host, port) = try BranchAddress.parseAuthority(String(part))
            } catch {
                throw bad("etcd host '\(part.prefix(64))' is not host:port")
            }
            let address = BranchAddress(scheme: "", host: host, port: port ?? 2379, rest: "")
            if !hosts.contains(address.authority) { hosts.append(address.authority) }
        }
        return hosts
    }

    /// `user`, `password` and `key`, percent-decoded; other parameters are refused so a typo is not silently ignored.
    private static func parseQuery(_ query: Substring, _ bad: (String) -> DTMError) throws(DTMError) -> [String: String] {
        var out: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let (name, value) = pair.firstIndex(of: "=").map { (pair[..<$0], pair[pair.index(after: $0)...]) } ?? (pair, "")
            guard ["user", "password", "key"].contains(name) else {
                throw bad("unknown parameter '\(name.prefix(32))' (known: user, password, key)")
            }
            guard let decoded = percentDecoded(value), decoded.utf8.count <= 1024 else { throw bad("parameter '\(name)' is not valid percent-encoded text") }
            out[String(name)] = decoded
        }
        return out
    }

    private static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let b = iterator.next() {
            if b == UInt8(ascii: "%") {
                guard let h = iterator.next(), let l = iterator.next(), let hi = hexValue(h), let lo = hexValue(l) else { return nil }
                bytes.append(hi << 4 | lo)
            } else if b == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
