import DTMCore

/// The outcome of one unary gRPC call at the transport level.
public enum GRPCCallOutcome: Sendable, Equatable {
    /// The server answered with a status (0 = OK).
    case status(code: Int, message: String)
    /// No status was received: connection refused or reset, GOAWAY, deadline, protocol error.
    case transportError(String)
}

/// A transport that makes unary gRPC calls with raw message bytes (the HTTP/2 connection pool).
public protocol GRPCUnaryTransport: Sendable {
    /// `tls`: HTTP/2 over TLS (a `grpcs://` branch URL) instead of h2c.
    func unary(authority: String, path: String, metadata: [(String, String)], message: [UInt8], timeout: Double, tls: Bool) async -> GRPCCallOutcome
}

/// Calls gRPC branches as DTM does (spec §7.3): URL `host:port/pkg.Service/Method` split at the first `/`,
/// metadata `dtm-gid`, `dtm-trans_type`, `dtm-branch_id`, `dtm-op`, `dtm-dtm` plus the branch headers, the
/// transaction's request timeout as the deadline, the payload bytes forwarded untouched.
public struct GRPCBranchCaller: BranchCaller {
    let transport: any GRPCUnaryTransport

    public init(transport: any GRPCUnaryTransport) { self.transport = transport }

    public func call(_ call: BranchCall) async -> BranchCallResult {
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

    /// `host:port/pkg.Service/Method` → (`host:port`, `/pkg.Service/Method`, h2c), read by `BranchAddress` (the
    /// parser the allow-list uses, so the authority dialled is the one checked). `grpc://` is the same as no
    /// scheme; `grpcs://` is HTTP/2 over TLS. Discovery targets such as `etcd://…` or `discov://…` need a naming
    /// driver, which swift-dtm does not have yet.
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
            return .failure(.other(
                "gRPC branch url '\(url)' uses the scheme '\(address.scheme)://': service discovery (etcd, consul, nacos, …) is not supported yet; use host:port/package.Service/Method"))
        }
        guard address.rest.utf8.first == UInt8(ascii: "/") else { return .failure(.other("bad url: '\(url)'. no '/' after host:port")) }
        return .success((address.authority, String(address.rest), tls))
    }

    static func metadata(for call: BranchCall) -> [(String, String)] {
        var m: [(String, String)] = [
            ("dtm-gid", call.gid), ("dtm-trans_type", call.transType.rawValue), ("dtm-branch_id", call.branchID),
            ("dtm-op", call.op), ("dtm-dtm", ""),
        ]
        for (k, v) in call.headers.sorted(by: { $0.key < $1.key }) { m.append((k.lowercased(), v)) }
        return m
    }

    /// OK → success; ABORTED → failure (legacy: message exactly `ONGOING` → ongoing); FAILED_PRECONDITION →
    /// ongoing; any other status or a transport error → retried with back-off.
    static func classify(_ outcome: GRPCCallOutcome) -> BranchCallResult {
        switch outcome {
        case .status(0, _): return .success
        case .status(10, let m): return m == "ONGOING" ? .ongoing(m) : .failure(m)
        case .status(9, let m): return .ongoing(m)
        case .status(let code, let m): return .error("grpc status \(code): \(m)")
        case .transportError(let m): return .error(m)
        }
    }
}
