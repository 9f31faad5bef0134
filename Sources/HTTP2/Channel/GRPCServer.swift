import EventLoopSupport
package import Logging
package import NIOCore
import NIOPosix
package import NIOSSL
import Synchronization

/// A plaintext (h2c, prior knowledge) gRPC server. Each unary request goes to one async handler;
/// routing by `request.path` is the handler's business (answer `GRPCResponse.unimplemented(path:)`
/// for unknown methods). Bidirectional streams are served only for the paths in
/// `Configuration.streamHandlers`, one synchronous answer per request message.
package final class GRPCServer: Sendable {
    package typealias Handler = @Sendable (GRPCRequest) async -> GRPCResponse
    /// Answers one message of a bidirectional stream, synchronously on the connection's event loop
    /// (so answers keep the order of requests). An OK response is sent as the next message; an error
    /// status ends the call. The call ends OK when the client half-closes.
    package typealias StreamMessageHandler = @Sendable (GRPCRequest) -> GRPCResponse

    package struct Configuration: Sendable {
        package var session = H2ServerSession.Configuration()
        /// How long a graceful shutdown waits for in-flight calls before closing connections.
        package var shutdownGracePeriod: Duration = .seconds(5)
        package var backlog: Int32 = 256
        /// A unary request must arrive completely within this long of its HEADERS, and a new connection must
        /// send its preface and SETTINGS within it; else the stream is cancelled / the connection closed.
        package var requestReadTimeout: Duration = .seconds(30)
        /// Most connections open at once; past it a new one gets GOAWAY (ENHANCE_YOUR_CALM, with the reason as
        /// debug data) and is closed (`MaxConnections`).
        package var maxConnections = 4096
        /// When set, connections speak HTTP/2 over TLS (its configuration should offer ALPN `h2`).
        package var tls: NIOSSLContext?
        /// A connection with no open stream and nothing received for this long gets GOAWAY and is closed
        /// (nil: never).
        package var idleTimeout: Duration? = .seconds(60)
        /// Bidirectional-stream methods by path (server reflection); every other path is unary.
        package var streamHandlers: [String: StreamMessageHandler] = [:]
        package init() {}
    }

    /// The bound address (useful with port 0).
    package let localAddress: SocketAddress
    private let serverChannel: any Channel
    /// Open connections, so shutdown can send each one GOAWAY.
    private let connections: ConnectionRegistry
    private let logger: Logger

    /// The bound port.
    package var port: Int { localAddress.port ?? 0 }

    private init(serverChannel: any Channel, connections: ConnectionRegistry, logger: Logger) {
        self.serverChannel = serverChannel
        self.localAddress = serverChannel.localAddress!  // a bound server channel has its address
        self.connections = connections
        self.logger = logger
    }

    /// Binds `host:port` (port 0 picks a free one) and starts serving.
    package static func start(
        host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        configuration: Configuration = .init(), logger: Logger,
        handler: @escaping Handler
    ) async throws -> GRPCServer {
        let registry = ConnectionRegistry()
        let grace = TimeAmount(configuration.shutdownGracePeriod)
        let sessionConfiguration = {
            var c = configuration.session
            c.streamingPaths.formUnion(configuration.streamHandlers.keys)
            return c
        }()
        let streamHandlers = configuration.streamHandlers
        let connectionLimit = ConnectionLimit(
            maximum: configuration.maxConnections,
            refusal: Self.goawayRefusal("too many connections: this listener serves at most \(configuration.maxConnections) (MaxConnections)"),
            listener: "gRPC", logger: logger)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard try connectionLimit.admit(channel) else { return }
                    if let tls = configuration.tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    let session = try H2ServerSession(configuration: sessionConfiguration, logger: logger)
                    let handler = GRPCServerChannelHandler(
                        session: session, handler: handler, streamHandlers: streamHandlers, shutdownGracePeriod: grace,
                        timeouts: .init(requestRead: configuration.requestReadTimeout, idle: configuration.idleTimeout), logger: logger)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    registry.add(channel)
                }
            }
            .bind(host: host, port: port)
            .get()
        let server = GRPCServer(serverChannel: channel, connections: registry, logger: logger)
        logger.info("gRPC server listening", metadata: ["address": "\(server.localAddress)"])
        return server
    }

    /// Stops accepting, sends GOAWAY on every connection, and returns once all connections have
    /// closed (in-flight calls get the configured grace period).
    package func shutdown() async {
        try? await serverChannel.close()
        for channel in connections.open {
            channel.triggerUserOutboundEvent(GRPCServerShutdownEvent(), promise: nil)
        }
        await connections.allClosed()
        logger.info("gRPC server stopped", metadata: ["address": "\(localAddress)"])
    }
}

extension GRPCServer {
    /// The server preface (empty SETTINGS) and a GOAWAY with ENHANCE_YOUR_CALM and `reason` as debug data: what a
    /// refused connection receives before it is closed, written without an nghttp2 session.
    static func goawayRefusal(_ reason: String) -> [UInt8] {
        let debug = Array(reason.utf8.prefix(1024))
        var out: [UInt8] = [0, 0, 0, 0x04, 0, 0, 0, 0, 0]
        let length = 8 + debug.count
        out += [UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), 0x07, 0, 0, 0, 0, 0]
        out += [0, 0, 0, 0]  // last stream id
        out += [0, 0, 0, 0x0b]  // ENHANCE_YOUR_CALM
        return out + debug
    }
}
