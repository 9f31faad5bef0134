package import DTMCore
package import HTTP2
package import Logging

/// The `dtmgimp.Dtm` service (spec §6.2) plus `grpc.health.v1.Health/Check`, independent of the transport:
/// a method path and the request message in, a reply out. Every method calls the same Coordinator as the
/// JSON API.
package struct DtmService: Sendable {
    package let coordinator: Coordinator
    let logger: Logger

    package init(coordinator: Coordinator, logger: Logger) {
        self.coordinator = coordinator
        self.logger = logger
    }

    /// The methods this service answers (for UNIMPLEMENTED checks before reading a body).
    package static let methods: Set<String> = Set(DtmMethod.allCases.map(\.rawValue))

    /// Whether calls are traced (the listener then passes the `traceparent` and `tracestate` metadata).
    package var tracing: Bool { coordinator.context.tracer != nil }

    /// Answers one call; `trace` is the context its metadata carried.
    package func handle(method: String, message: [UInt8], trace: TraceHeaders? = nil) async -> GRPCResponse {
        guard let tracer = coordinator.context.tracer, let known = DtmMethod(path: method), known != .healthCheck else {
            return await respond(method: method, message: message, span: nil)
        }
        // Named by the method table, so that no caller can choose a span name.
        let span = tracer.span(
            "\(known.service)/\(known.name)", kind: .server, parent: trace,
            ["rpc.system": .string("grpc"), "rpc.service": .string(known.service), "rpc.method": .string(known.name)])
        let response = await respond(method: method, message: message, span: span)
        span.set("rpc.grpc.status_code", .int(Int64(response.status.code.rawValue)))
        switch response.status.code {
        case .ok, .aborted, .failedPrecondition, .invalidArgument, .notFound, .alreadyExists, .unauthenticated, .permissionDenied:
            span.end()  // DTM's FAILURE and ONGOING answers and the client's own mistakes
        default:
            span.fail(String(response.status.message.prefix(512)))
        }
        return response
    }

    private func respond(method: String, message: [UInt8], span: (any TraceSpan)?) async -> GRPCResponse {
        var gid: String?
        defer { if let span, let gid { span.set("dtm.gid", .string(Limits.shown(gid: gid))) } }
        do {
            return try await dispatch(method: method, message: message, gid: &gid, trace: span?.headers)
        } catch {
            let status = StatusMapping.status(for: error, gid: gid)
            var meta: Logger.Metadata = [
                "method": .string(method), "grpc_status": .stringConvertible(status.code.rawValue), "error": .string(status.message),
            ]
            if let gid { meta["gid"] = .string(Limits.shown(gid: gid)) }
            if status.code == .internal || status.code == .unknown {
                logger.error("grpc call failed", metadata: meta)
            } else {
                logger.info("grpc call refused", metadata: meta)
            }
            return GRPCResponse(status: status)
        }
    }

    private func dispatch(method path: String, message: [UInt8], gid: inout String?, trace: TraceHeaders?) async throws -> GRPCResponse {
        guard let method = DtmMethod(path: path) else { return .unimplemented(path: path) }
        switch method {
        case .newGid:
            try ProtoCodec.decodeEmpty(message)
            return .ok(try ProtoCodec.encodeGidReply(coordinator.newGid()))
        case .submit:
            var r = try ProtoCodec.decodeRequest(message)
            gid = r.gid
            r.trace = trace
            try await coordinator.submit(r)
            return .ok([])
        case .prepare:
            var r = try ProtoCodec.decodeRequest(message)
            gid = r.gid
            r.trace = trace
            try await coordinator.prepare(r)
            return .ok([])
        case .abort:
            var r = try ProtoCodec.decodeRequest(message)
            gid = r.gid
            r.trace = trace
            try await coordinator.abort(r)
            return .ok([])
        case .registerBranch:
            let r = try ProtoCodec.decodeBranchRequest(message)
            gid = r.gid
            try await coordinator.registerBranch(r)
            return .ok([])
        case .prepareWorkflow:
            var r = try ProtoCodec.decodeRequest(message)
            gid = r.gid
            r.trace = trace
            let (t, progresses) = try await coordinator.prepareWorkflow(r)
            return .ok(try ProtoCodec.encodeProgressesReply(t, progresses))
        case .subscribe:
            let r = try ProtoCodec.decodeTopicRequest(message)
            try await coordinator.subscribe(topic: r.topic, url: r.url, remark: r.remark)
            return .ok([])
        case .unsubscribe:
            let r = try ProtoCodec.decodeTopicRequest(message)
            try await coordinator.unsubscribe(topic: r.topic, url: r.url)
            return .ok([])
        case .deleteTopic:
            let r = try ProtoCodec.decodeTopicRequest(message)
            try await coordinator.deleteTopic(r.topic)
            return .ok([])
        case .healthCheck:
            // HealthCheckResponse { status: SERVING (1) } — field 1, varint.
            return .ok([0x08, 0x01])
        }
    }
}
