/// Reading the host out of a branch URL: `http(s)://host:port/path`, a gRPC target `host:port/pkg.Svc/Method`,
/// or a bracketed IPv6 literal `[::1]:8080/…`.
public enum BranchURL {
    public static func host(of url: String) -> String {
        var rest = Substring(url)
        if let scheme = rest.firstRange(of: "://") { rest = rest[scheme.upperBound...] }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let hostPort = authority.split(separator: "@").last ?? authority
        if hostPort.hasPrefix("["), let close = hostPort.firstIndex(of: "]") {
            return String(hostPort[hostPort.index(after: hostPort.startIndex)..<close]).lowercased()
        }
        return String(hostPort.prefix { $0 != ":" }).lowercased()
    }
}
