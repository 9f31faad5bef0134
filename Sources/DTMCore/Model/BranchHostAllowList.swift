/// `BranchHostAllowList`: the hosts (optionally `host:port`) that branch, check-back, resume and subscriber URLs
/// may name. Entries and URLs are read by `BranchAddress`, so case, a trailing dot and IPv6 spellings do not
/// matter, and a URL that cannot be read unambiguously is refused. Checked at submit and again before every
/// call, so a list changed by a restart applies to stored transactions too.
package struct BranchHostAllowList: Sendable, Equatable {
    struct Entry: Sendable, Hashable {
        var host: String
        var port: Int?
    }

    private let entries: Set<Entry>

    /// Comma-separated entries; spaces around them are ignored. Nil when the text holds no entry.
    package init?(parsing text: String) throws(DTMError) {
        var entries = Set<Entry>()
        for raw in text.split(separator: ",") {
            let item = raw.filter { $0 != " " && $0 != "\t" }
            if item.isEmpty { continue }
            do {
                let (host, port) = try BranchAddress.parseAuthority(item)
                entries.insert(Entry(host: host, port: port))
            } catch {
                throw .invalidArgument("BranchHostAllowList entry '\(item.prefix(128))' is not a host or host:port")
            }
        }
        if entries.isEmpty { return nil }
        self.entries = entries
    }

    package func allows(_ address: BranchAddress) -> Bool {
        if entries.contains(Entry(host: address.host, port: nil)) { return true }
        guard let port = address.effectivePort else { return false }
        return entries.contains(Entry(host: address.host, port: port))
    }

    /// True when `authority` (`host:port` as dialled, such as an address resolved from etcd) is allowed.
    package func allows(authority: String) -> Bool {
        guard let (host, port) = try? BranchAddress.parseAuthority(authority) else { return false }
        return allows(BranchAddress(scheme: "", host: host, port: port, rest: ""))
    }

    /// Throws unless `url` is empty or names an allowed host; the message names the field. A discovery URL
    /// (`etcd://h1:2379,h2:2379/…`) needs every etcd host allowed; the addresses it resolves to are checked when
    /// called.
    package func check(_ url: String, field: String) throws(DTMError) {
        guard !url.isEmpty else { return }
        if DiscoveryTarget.isDiscoveryURL(url) {
            let target: DiscoveryTarget
            do {
                target = try DiscoveryTarget.parseBranchURL(url).target
            } catch {
                throw .invalidArgument("\(field): \(error.description); it cannot be checked against BranchHostAllowList")
            }
            for host in target.hosts where !allows(authority: host) {
                throw .invalidArgument("\(field): etcd host '\(host.prefix(128))' is not in BranchHostAllowList")
            }
            return
        }
        let address: BranchAddress
        do {
            address = try BranchAddress.parse(url)
        } catch {
            throw .invalidArgument("\(field): \(error.description); it cannot be checked against BranchHostAllowList")
        }
        if !allows(address) {
            throw .invalidArgument("\(field): host '\(address.authority.prefix(128))' is not in BranchHostAllowList")
        }
    }
}
