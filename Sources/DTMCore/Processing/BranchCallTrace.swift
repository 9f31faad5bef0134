/// A branch call inside a traced round: a client span, child of the round's, whose context the call carries as
/// `traceparent`, and the DTM result as its status. Attributes follow OpenTelemetry's HTTP and RPC client
/// conventions where they apply (README, Tracing).
enum BranchCallTrace {
    static func call(_ caller: any BranchCaller, _ call: BranchCall, round span: (any TraceSpan)?) async -> BranchCallResult {
        guard let span, !call.url.isEmpty else { return await caller.call(call) }
        let (name, attributes) = describe(call)
        let child = span.child(name, kind: .client, attributes)
        var traced = call
        traced.trace = child.headers
        let result = await caller.call(traced)
        switch result {
        case .success:
            child.set("dtm.result", .string("SUCCESS"))
            child.succeed()
        case .failure(let text):
            child.set("dtm.result", .string("FAILURE"))
            child.fail(String(text.prefix(512)))
        case .ongoing:
            child.set("dtm.result", .string("ONGOING"))
            child.end()
        case .error(let text):
            child.set("dtm.result", .string("ERROR"))
            child.fail(String(text.prefix(512)))
        }
        return result
    }

    /// The span's name and attributes: `POST`/`GET` and the URL for an HTTP branch; `pkg.Service/Method` and the
    /// RPC attributes for a gRPC one (the transport is chosen as `BranchCallRouter` chooses it).
    static func describe(_ call: BranchCall) -> (String, [String: TraceValue]) {
        var attributes: [String: TraceValue] = [
            "dtm.gid": .string(call.gid), "dtm.branch_id": .string(call.branchID), "dtm.op": .string(call.op),
            "dtm.trans_type": .string(call.transType.rawValue),
        ]
        let address = try? BranchAddress.parse(call.url)
        if let address {
            attributes["server.address"] = .string(address.host)
            if let port = address.effectivePort { attributes["server.port"] = .int(Int64(port)) }
        }
        if BranchCallRouter.isHTTP(call) {
            let method = call.usesPOST ? "POST" : "GET"
            attributes["http.request.method"] = .string(method)
            attributes["url.full"] = .string(String(call.url.prefix(1024)))
            return (method, attributes)
        }
        // `host:port/pkg.Service/Method` (a scheme first for grpc://, grpcs:// and discovery targets).
        let method = address.map { String($0.rest.drop(while: { $0 == "/" })) } ?? call.url
        let parts = method.split(separator: "/", maxSplits: 1)
        attributes["rpc.system"] = .string("grpc")
        if parts.count == 2 {
            attributes["rpc.service"] = .string(String(parts[0].prefix(256)))
            attributes["rpc.method"] = .string(String(parts[1].prefix(256)))
        }
        return (String(method.prefix(256)), attributes)
    }
}
