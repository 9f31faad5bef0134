package import DTMCore
package import HTTP2
import Synchronization

/// A transport that makes unary gRPC calls with raw message bytes (the HTTP/2 connection pool). Transport failures
/// come back as a status (UNAVAILABLE, DEADLINE_EXCEEDED, …), `isTransparentlyRetryable` when the call provably
/// never reached the server.
package protocol GRPCUnaryTransport: Sendable {
    /// `tls`: HTTP/2 over TLS (a `grpcs://` branch URL) instead of h2c.
    func unary(authority: String, path: String, metadata: [(String, String)], message: [UInt8], timeout: Double, tls: Bool) async -> GRPCCallResult
}

/// Finds the instances of a service named by a discovery URL (`etcd://hosts/user.rpc/…`): go-zero over etcd.
package protocol GRPCServiceResolver: Sendable {
    /// The addresses to try for one call, best first, each exactly `host:port` (see `GRPCBranchCaller.dialable`);
    /// a failure says why none is known.
    func addresses(for target: DiscoveryTarget) async -> Result<[String], DTMError>
    /// A call could not reach `address`: try it last for a while.
    func markFailed(_ address: String, for target: DiscoveryTarget)
}

/// Parsed discovery branch URLs, at most `capacity` of them (emptied when full: URLs come from clients).
final class DiscoveryURLCache: Sendable {
    private let entries = Mutex<[String: Result<(DiscoveryTarget, String), DTMError>]>([:])
    static let capacity = 4096

    func lookup(_ url: String) -> Result<(DiscoveryTarget, String), DTMError> {
        if let hit = entries.withLock({ $0[url] }) { return hit }
        let result: Result<(DiscoveryTarget, String), DTMError>
        do throws(DTMError) {
            let (target, method) = try DiscoveryTarget.parseBranchURL(url)
            result = .success((target, method))
        } catch {
            result = .failure(error)
        }
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[url] = result
        }
        return result
    }
}

/// Calls gRPC branches as DTM does (spec §7.3): URL `host:port/pkg.Service/Method` split at the first `/`,
/// metadata `dtm-gid`, `dtm-trans_type`, `dtm-branch_id`, `dtm-op`, `dtm-dtm` plus the branch headers, the
/// transaction's request timeout as the deadline, the payload bytes forwarded untouched.
///
/// A discovery URL (`etcd://127.0.0.1:2379/user.rpc/user.UserService/UserCreate`) is split as DTM splits it and
/// its service resolved by `resolver`: the call goes to the first address, and on to the next when one cannot be
/// reached. No address known is a temporary failure (retried later, never a failed branch). With an allow-list,
/// resolved addresses not on it are never called.
package struct GRPCBranchCaller: BranchCaller {
    let transport: any GRPCUnaryTransport
    let resolver: (any GRPCServiceResolver)?
    let allowList: BranchHostAllowList?
    /// Parsed discovery URLs: a saga's URLs are called again and again, and parsing is most of a resolution's cost.
    private let parsed = DiscoveryURLCache()
    /// Most addresses one call tries before giving up until the next round.
    package static let maxAddressesPerCall = 3

    package init(transport: any GRPCUnaryTransport, resolver: (any GRPCServiceResolver)? = nil, allowList: BranchHostAllowList? = nil) {
        self.transport = transport
        self.resolver = resolver
        self.allowList = allowList
    }

    package func call(_ call: BranchCall) async -> BranchCallResult {
        if DiscoveryTarget.isDiscoveryURL(call.url) { return await callDiscovered(call) }
        let target: (authority: String, path: String, tls: Bool)
        switch Self.split(call.url) {
        case .success(let t): target = t
        case .failure(let e): return .error(e.description)
        }
        return Self.classify(
            await transport.unary(
                authority: target.authority, path: target.path, metadata: Self.metadata(for: call), message: call.payload,
                timeout: call.timeout, tls: target.tls))
    }

    private func callDiscovered(_ call: BranchCall) async -> BranchCallResult {
        let target: DiscoveryTarget
        let method: String
        switch parsed.lookup(call.url) {
        case .success(let t): (target, method) = t
        case .failure(let error): return .error(error.description)
        }
        guard let resolver else {
            return .error("gRPC branch url '\(call.url.prefix(128))' needs service discovery: set MicroService.Driver to dtm-driver-gozero")
        }
        var candidates: [String]
        switch await resolver.addresses(for: target) {
        case .success(let addresses): candidates = addresses
        case .failure(let error): return .error(error.description)
        }
        if let allowList {
            let allowed = candidates.filter { allowList.allows(authority: $0) }
            if allowed.isEmpty {
                return .error("service '\(target.key)' resolved to \(candidates.prefix(4).joined(separator: ", ")), none of which is in BranchHostAllowList")
            }
            candidates = allowed
        }
        var result = GRPCCallResult(status: GRPCStatus(.unavailable, "no address tried"))
        for address in candidates.prefix(Self.maxAddressesPerCall) {
            result = await transport.unary(
                authority: address, path: method, metadata: Self.metadata(for: call), message: call.payload, timeout: call.timeout, tls: false)
            guard result.isTransparentlyRetryable else { break }
            resolver.markFailed(address, for: target)  // never reached: the next address may answer
        }
        return Self.classify(result)
    }

    /// A registered value as the authority to dial, or nil unless it is exactly `host:port` (anything else in etcd,
    /// written by whoever can write there, is not called).
    package static func dialable(_ value: String) -> String? {
        guard let (host, port) = try? BranchAddress.parseAuthority(value), let port else { return nil }
        return BranchAddress(scheme: "", host: host, port: port, rest: "").authority
    }

    /// `host:port/pkg.Service/Method` → (`host:port`, `/pkg.Service/Method`, h2c), read by `BranchAddress` (the
    /// parser the allow-list uses, so the authority dialled is the one checked). `grpc://` is the same as no
    /// scheme; `grpcs://` is HTTP/2 over TLS. Discovery URLs go through `callDiscovered` instead.
    static func split(_ url: String) -> Result<(authority: String, path: String, tls: Bool), DTMError> {
        guard url.utf8.contains(UInt8(ascii: "/")) else { return .failure(.other("bad url: '\(url)'. no '/' found")) }
        let address: BranchAddress
        do {
            address = try BranchAddress.parse(url)
        } catch {
            return .failure(.other(error.description))
        }
        let tls = address.scheme == "grpcs"
        if !address.scheme.isEmpty && address.scheme != "grpc" && !tls {
            return .failure(
                .other(
                    "gRPC branch url '\(url)' uses the scheme '\(address.scheme)://': only etcd:// and discov:// (go-zero over etcd) are supported for service discovery; consul, nacos, … are not yet"
                ))
        }
        guard address.rest.utf8.first == UInt8(ascii: "/") else { return .failure(.other("bad url: '\(url)'. no '/' after host:port")) }
        return .success((address.authority, String(address.rest), tls))
    }

    static func metadata(for call: BranchCall) -> [(String, String)] {
        var m: [(String, String)] = [
            ("dtm-gid", call.gid), ("dtm-trans_type", call.transType.rawValue), ("dtm-branch_id", call.branchID),
            ("dtm-op", call.op), ("dtm-dtm", ""),
        ]
        for (k, v) in call.headers.sorted(by: { $0.key < $1.key }) {
            let name = k.lowercased()
            // While tracing, the call's own span is the parent, whatever the transaction's headers said.
            if call.trace != nil, name == TraceHeaders.traceparentName || name == TraceHeaders.tracestateName { continue }
            m.append((name, v))
        }
        if let trace = call.trace { m += trace.pairs }
        return m
    }

    /// OK → success; ABORTED → failure (legacy: message exactly `ONGOING` → ongoing); FAILED_PRECONDITION →
    /// ongoing; any other status or a transport error → retried with back-off.
    static func classify(_ result: GRPCCallResult) -> BranchCallResult {
        let m = result.status.message
        switch result.status.code {
        case .ok: return .success
        case .aborted: return m == "ONGOING" ? .ongoing(m) : .failure(m)
        case .failedPrecondition: return .ongoing(m)
        case let code: return .error("grpc status \(code.rawValue): \(m)")
        }
    }
}
