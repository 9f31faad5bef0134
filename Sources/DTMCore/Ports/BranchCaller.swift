/// One call to a branch (or to a check-back / resume URL), with everything the transport needs.
package struct BranchCall: Sendable {
    package var url: String
    package var gid: String
    package var transType: TransType
    package var transProtocol: String
    package var branchID: String
    package var op: String
    package var payload: [UInt8]
    /// Extra HTTP headers / gRPC metadata (`branch_headers`).
    package var headers: [String: String]
    /// Per-call timeout in seconds.
    package var timeout: Double
    /// The call's span context while tracing (sent as `traceparent`/`tracestate`, over any `headers` of those names).
    package var trace: TraceHeaders?

    package init(
        url: String, gid: String, transType: TransType, transProtocol: String, branchID: String, op: String,
        payload: [UInt8], headers: [String: String], timeout: Double
    ) {
        self.url = url
        self.gid = gid
        self.transType = transType
        self.transProtocol = transProtocol
        self.branchID = branchID
        self.op = op
        self.payload = payload
        self.headers = headers
        self.timeout = timeout
    }

    /// An HTTP branch is called with POST when it has a payload or is an XA branch, else with GET (spec §7.2).
    package var usesPOST: Bool { !payload.isEmpty || transType == .xa }
}

/// How a branch answered, classified as DTM does (spec §3, §7.5, §7.3).
package enum BranchCallResult: Sendable, Equatable {
    case success
    /// Definite failure (HTTP 409 / body contains FAILURE / gRPC ABORTED); the text is the branch's answer.
    case failure(String)
    /// Not finished yet (HTTP 425 / body contains ONGOING / gRPC FAILED_PRECONDITION).
    case ongoing(String)
    /// Anything else (other status, transport error, timeout): retried with back-off.
    case error(String)
}

/// A transport that calls branches. The HTTP and gRPC callers implement it; tests script it.
package protocol BranchCaller: Sendable {
    func call(_ call: BranchCall) async -> BranchCallResult
}

/// Chooses the transport for a call exactly as DTM does (spec §7.1): an empty URL succeeds without a call (the one
/// place that says so); a task already cancelled (a round cut short by RoundTimeout or shutdown) calls nothing;
/// a `grpc://` or `grpcs://` URL goes over gRPC (ours: DTM has no such schemes); a trans with protocol `http`, or a
/// URL starting with http:// or https://, goes over HTTP; everything else is a gRPC target
/// `host:port/pkg.Service/Method`. With an allow-list, a URL it does not allow is not called:
/// the call is an error, retried with back-off (the list may have changed since the transaction was stored).
package struct BranchCallRouter: BranchCaller {
    package let http: any BranchCaller
    package let grpc: any BranchCaller
    package let allowList: BranchHostAllowList?

    package init(http: any BranchCaller, grpc: any BranchCaller, allowList: BranchHostAllowList? = nil) {
        self.http = http
        self.grpc = grpc
        self.allowList = allowList
    }

    package func call(_ call: BranchCall) async -> BranchCallResult {
        if call.url.isEmpty { return .success }
        if Task.isCancelled { return .error("round cancelled before calling \(call.url.prefix(256))") }
        if let allowList {
            do throws(DTMError) { try allowList.check(call.url, field: "branch \(call.branchID) \(call.op)") } catch { return .error(error.description) }
        }
        return await Self.isHTTP(call) ? http.call(call) : grpc.call(call)
    }

    /// Whether the call goes over HTTP (else gRPC).
    package static func isHTTP(_ call: BranchCall) -> Bool {
        // A gRPC scheme names its transport whatever the transaction's protocol (an HTTP client cannot call it).
        if call.url.hasPrefix("grpcs://") || call.url.hasPrefix("grpc://") { return false }
        return call.transProtocol == TransProtocol.http || call.url.hasPrefix("http://") || call.url.hasPrefix("https://")
    }
}
