package import DTMCore
package import DTMMetrics
import EventLoopSupport
import HTTP2
package import Logging
package import NIOCore
package import NIOSSL

/// The gRPC listener (port 36790): nghttp2 server sessions in front of `DtmService` and `ServerReflection`, with the optional bearer
/// token (metadata `authorization`; the health check stays open) and DTM's request metrics. Calls that need no token are
/// admitted as open: their bytes count against the pending-bytes budgets until complete, and the health check takes only
/// a small message (`openMessageLimit`).
package final class DtmGRPCListener: Sendable {
    private let server: GRPCServer

    private init(server: GRPCServer) { self.server = server }

    package var port: Int { server.port }

    package static func start(
        host: String, port: Int, service: DtmService, maxMessageSize: Int, access: AccessPolicy, metrics: DTMMetrics?,
        requestReadTimeout: Duration = .seconds(30), idleTimeout: Duration? = .seconds(60), maxConnections: Int = 4096, tls: NIOSSLContext? = nil,
        pendingBytes: PendingBytesLimits = .init(), group: any EventLoopGroup, logger: Logger
    ) async throws -> DtmGRPCListener {
        var configuration = GRPCServer.Configuration()
        configuration.session.maxMessageSize = maxMessageSize
        configuration.requestReadTimeout = requestReadTimeout
        configuration.idleTimeout = idleTimeout
        configuration.maxConnections = maxConnections
        configuration.tls = tls
        configuration.session.maxPendingBytesPerConnection = pendingBytes.perConnection
        configuration.session.pendingBytes = PendingBytesBudget(limit: pendingBytes.perProcess)
        // Tokens are checked on HEADERS, before any message is buffered, for unary and streaming calls alike.
        configuration.session.authorize = { path, metadata in admission(path: path, metadata: metadata, access: access, logger: logger) }
        let reflection = ServerReflection(services: Self.services)
        for path in ServerReflection.paths {
            configuration.streamHandlers[path] = { request in reflection.answer(request) }
        }
        let server = try await GRPCServer.start(host: host, port: port, group: group, configuration: configuration, logger: logger) { request in
            let started = ContinuousClock.now
            let response = await RoundExecutor.$preferred.withValue(request.taskExecutor) {
                await Self.respond(request, service: service)
            }
            if let metrics {
                // Known methods only: a client must not be able to add label values.
                let api = DtmMethod(path: request.path)?.metricLabel ?? "other"
                metrics.apiCall(type: .grpc, api: api, failed: response.status.code != .ok, started: started)
            }
            return response
        }
        return DtmGRPCListener(server: server)
    }

    static func respond(_ request: GRPCRequest, service: DtmService) async -> GRPCResponse {
        guard DtmService.methods.contains(request.path) else { return .unimplemented(path: request.path) }
        guard service.tracing else { return await service.handle(method: request.path, message: request.message) }
        func value(_ name: String) -> String? { request.metadata.first(where: { $0.0 == name })?.1 }
        let trace = TraceHeaders.received(traceparent: value(TraceHeaders.traceparentName), tracestate: value(TraceHeaders.tracestateName))
        return await service.handle(method: request.path, message: request.message, trace: trace)
    }

    /// What server reflection lists: the services of the method table, and reflection itself.
    static let services: [String] = {
        var names: [String] = []
        for method in DtmMethod.allCases where !names.contains(method.service) { names.append(method.service) }
        return names + ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]
    }()

    /// The token level of a method (`DtmMethod.access`); reflection and unknown paths need the client token.
    static func level(_ path: String) -> AccessPolicy.Level { DtmMethod(path: path)?.access ?? .client }

    /// Largest message of a method open to anyone whatever the tokens (the health check's request names a service).
    static let openMessageLimit = 1024

    /// UNAUTHENTICATED when the method's token is configured and the call lacks it; authenticated when it carries it;
    /// otherwise open (no token is configured for it), with `openMessageLimit` for the methods that are always open.
    static func admission(path: String, metadata: [(String, String)], access: AccessPolicy, logger: Logger) -> GRPCAdmission {
        let level = level(path)
        guard access.allows(level, authorization: metadata.first(where: { $0.0 == "authorization" })?.1) else {
            logger.notice(
                "grpc call refused: missing or wrong bearer token",
                metadata: ["method": .string(String(path.prefix(256))), "needs": .string(level == .admin ? "AdminToken" : "AuthToken")])
            return .refused(GRPCStatus(.unauthenticated, "missing or wrong bearer token (metadata authorization: Bearer <token>)"))
        }
        if level == .open { return .open(maxMessageSize: openMessageLimit) }
        return access.allows(level, authorization: nil) ? .open(maxMessageSize: nil) : .authenticated
    }

    /// `GrpcMaxPendingBytesPerConnection` and `GrpcMaxPendingBytes`: bytes of open calls' messages held at once.
    package struct PendingBytesLimits: Sendable {
        package var perConnection = 8 << 20
        package var perProcess = 64 << 20
        package init(perConnection: Int = 8 << 20, perProcess: Int = 64 << 20) {
            self.perConnection = perConnection
            self.perProcess = perProcess
        }
    }

    /// GOAWAY to every connection, in-flight calls finish within the grace period.
    package func shutdown() async { await server.shutdown() }
}
