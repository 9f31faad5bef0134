import DTMCore
import EventLoopSupport
package import Logging
package import NIOCore
import NIOHTTP1
import NIOPosix
package import NIOSSL
import Synchronization

/// The HTTP/1.1 listener of the JSON API (port 36789). Each connection is served by an
/// `HTTPAPIConnectionHandler`, which runs each request's handling in a task preferring the connection's event
/// loop (see `EventLoopTaskExecutor`), as the gRPC listener does.
package final class HTTPAPIServer: Sendable {
    let router: APIRouter
    let limits: HTTPServerLimits
    let logger: Logger
    private let group: any EventLoopGroup
    /// When set, connections speak HTTPS (`TLSCertFile` / `TLSKeyFile`).
    private let tls: NIOSSLContext?
    private let state = Mutex(State())
    private let connections = ConnectionRegistry()
    private let inFlight = InFlightRequests()

    private struct State {
        var serverChannel: (any Channel)?
        var shuttingDown = false
    }

    package init(router: APIRouter, limits: HTTPServerLimits, group: any EventLoopGroup, tls: NIOSSLContext? = nil, logger: Logger) {
        self.router = router
        self.limits = limits
        self.group = group
        self.tls = tls
        self.logger = logger
    }

    /// Binds and serves until `shutdown()` has closed the listener and every connection (or until cancelled,
    /// which closes them at once). `onBound` receives the port actually bound.
    package func run(host: String, port: Int, onBound: @Sendable (Int) -> Void = { _ in }) async throws {
        let idle = limits.idleTimeoutSeconds
        let connectionLimit = ConnectionLimit(
            maximum: limits.maxConnections, refusal: Self.tooManyConnections(limits.maxConnections), listener: "HTTP", logger: logger)
        let readTimeout = TimeAmount.seconds(limits.readTimeoutSeconds)
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    guard try connectionLimit.admit(channel) else { return }
                    if let tls = self.tls { try sync.addHandler(NIOSSLServerHandler(context: tls)) }
                    try sync.addHandler(IdleStateHandler(allTimeout: .seconds(idle)))
                    try sync.addHandler(CloseOnIdleHandler())
                    let deadline = RequestReadDeadline(timeout: readTimeout)
                    try sync.addHandler(RequestStartWatcher(deadline))
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(RequestEndWatcher(deadline))
                    try sync.addHandler(HTTPAPIConnectionHandler(server: self))
                    self.connections.add(channel)
                }
            }
            .bind(host: host, port: port).get()
        let shutdownEarly = state.withLock { s -> Bool in
            s.serverChannel = server
            return s.shuttingDown
        }
        if shutdownEarly { try? await server.close() }
        onBound(server.localAddress?.port ?? port)
        logger.info("HTTP API listening", metadata: ["host": .string(host), "port": .stringConvertible(server.localAddress?.port ?? port)])

        try await withTaskCancellationHandler {
            try await server.closeFuture.get()
            // The listener is closed; `shutdown()` closes the connections once their requests are answered.
            await connections.allClosed()
        } onCancel: {
            self.closeListener()
            self.connections.closeAll()
        }
        logger.info("HTTP API stopped")
    }

    /// Graceful shutdown: stop accepting, let in-flight requests finish (up to the grace period), then close
    /// every connection.
    package func shutdown() async {
        closeListener()
        await inFlight.idle(within: .milliseconds(Int64(limits.shutdownGraceSeconds * 1000)))
        connections.closeAll()
    }

    /// Whether answers should ask their client to close the connection (shutdown has begun).
    var isShuttingDown: Bool { state.withLock { $0.shuttingDown } }

    func requestStarted() { inFlight.started() }
    func requestFinished() { inFlight.finished() }

    private func closeListener() {
        let channel = state.withLock { s -> (any Channel)? in
            s.shuttingDown = true
            return s.serverChannel
        }
        channel?.close(promise: nil)
    }
}

/// Closes a connection on which nothing moved for the idle timeout (slow or abandoned clients).
final class CloseOnIdleHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

extension HTTPAPIServer {
    /// The answer to a connection past `MaxConnections`: 503, then the connection is closed.
    static func tooManyConnections(_ maximum: Int) -> [UInt8] {
        let body = #"{"message":"too many connections: this listener serves at most "# + String(maximum) + #" (MaxConnections)"}"#
        return Array(
            ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "
                + String(body.utf8.count) + "\r\n\r\n" + body).utf8)
    }
}
