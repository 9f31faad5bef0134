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

    package func handle(method: String, message: [UInt8]) async -> GRPCResponse {
        var gid: String?
        do {
            return try await dispatch(method: method, message: message, gid: &gid)
        } catch {
            let status = StatusMapping.status(for: error, gid: gid)
            var meta: Logger.Metadata = [
                "method": .string(method), "grpc_status": .stringConvertible(status.code.rawValue), "error": .string(status.message),
            ]
            if let gid { meta["gid"] = .string(gid) }
            if status.code == .internal || status.code == .unknown {
                logger.error("grpc call failed", metadata: meta)
            } else {
                logger.info("grpc call refused", metadata: meta)
            }
            return GRPCResponse(status: status)
        }
    }

    private func dispatch(method path: String, message: [UInt8], gid: inout String?) async throws -> GRPCResponse {
        guard let method = DtmMethod(path: path) else { return .unimplemented(path: path) }
        switch method {
        case .newGid:
            try ProtoCodec.decodeEmpty(message)
            return .ok(try ProtoCodec.encodeGidReply(coordinator.newGid()))
        case .submit:
            let r = try ProtoCodec.decodeRequest(message)
            gid = r.gid
            try await coordinator.submit(r)
            return .ok([])
        case .prepare:
            let r = try ProtoCodec.decodeRequest(message)
            gid = r.gid
            try await coordinator.prepare(r)
            return .ok([])
        case .abort:
            let r = try ProtoCodec.decodeRequest(message)
            gid = r.gid
            try await coordinator.abort(r)
            return .ok([])
        case .registerBranch:
            let r = try ProtoCodec.decodeBranchRequest(message)
            gid = r.gid
            try await coordinator.registerBranch(r)
            return .ok([])
        case .prepareWorkflow:
            let r = try ProtoCodec.decodeRequest(message)
            gid = r.gid
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
