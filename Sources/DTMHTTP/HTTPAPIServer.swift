import DTMCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The HTTP/1.1 listener of the JSON API (port 36789). Each connection is served by its own task, requests in
/// order; the request body is collected up to `limits.maxBodyBytes` and handed to the `APIRouter`.
public final class HTTPAPIServer: Sendable {
    private typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    private let router: APIRouter
    private let limits: HTTPServerLimits
    private let logger: Logger
    private let group: any EventLoopGroup
    private let state = Mutex(State())

    private struct State {
        var serverChannel: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var inFlight = 0
        var shuttingDown = false
    }

    public init(router: APIRouter, limits: HTTPServerLimits, group: any EventLoopGroup, logger: Logger) {
        self.router = router
        self.limits = limits
        self.group = group
        self.logger = logger
    }

    /// Binds and serves until `shutdown()` (or cancellation). `onBound` receives the port actually bound.
    public func run(host: String, port: Int, onBound: @Sendable (Int) -> Void = { _ in }) async throws {
        let idle = limits.idleTimeoutSeconds
        let readTimeout = TimeAmount.seconds(limits.readTimeoutSeconds)
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(allTimeout: .seconds(idle)))
                    try sync.addHandler(CloseOnIdleHandler())
                    let deadline = RequestReadDeadline(timeout: readTimeout)
                    try sync.addHandler(RequestStartWatcher(deadline))
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(RequestEndWatcher(deadline))
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
        let shutdownEarly = state.withLock { s -> Bool in
            s.serverChannel = server.channel
            return s.shuttingDown
        }
        if shutdownEarly { try? await server.channel.close() }
        onBound(server.channel.localAddress?.port ?? port)
        logger.info("HTTP API listening", metadata: ["host": .string(host), "port": .stringConvertible(server.channel.localAddress?.port ?? port)])

        try await withTaskCancellationHandler {
            try await withThrowingDiscardingTaskGroup { tasks in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        tasks.addTask { await self.serve(connection) }
                    }
                }
            }
        } onCancel: {
            self.closeListener()
        }
        logger.info("HTTP API stopped")
    }

    /// Graceful shutdown: stop accepting, let in-flight requests finish (up to the grace period), then close
    /// every connection.
    public func shutdown() async {
        closeListener()
        let deadline = ContinuousClock.now + .milliseconds(Int64(limits.shutdownGraceSeconds * 1000))
        while state.withLock({ $0.inFlight }) > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let open = state.withLock { Array($0.connections.values) }
        for channel in open { channel.close(promise: nil) }
    }

    private func closeListener() {
        let channel = state.withLock { s -> (any Channel)? in
            s.shuttingDown = true
            return s.serverChannel
        }
        channel?.close(promise: nil)
    }

    private func serve(_ connection: Connection) async {
        let channel = connection.channel
        let id = ObjectIdentifier(channel)
        state.withLock { $0.connections[id] = channel }
        defer { _ = state.withLock { $0.connections.removeValue(forKey: id) } }
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body = channel.allocator.buffer(capacity: 0)
                var refused: String?
                for try await part in inbound {
                    switch part {
                    case .head(let h):
                        head = h
                        body.clear()
                        refused = nil
                        if let length = h.headers.first(name: "content-length").flatMap(Int.init), length > limits.maxBodyBytes {
                            refused = "request body of \(length) bytes exceeds the limit of \(limits.maxBodyBytes) bytes"
                        }
                    case .body(var chunk):
                        guard refused == nil else { continue }
                        if body.readableBytes + chunk.readableBytes > limits.maxBodyBytes {
                            refused = "request body exceeds the limit of \(limits.maxBodyBytes) bytes"
                            body.clear()
                        } else {
                            body.writeBuffer(&chunk)
                        }
                    case .end:
                        guard let requestHead = head else { continue }
                        head = nil
                        if let refused {
                            // The rest of an oversized body is not read: answer and close.
                            try await respond(outbound, requestHead, APIResponse.error(DTMError.invalidArgument(refused), gid: nil), close: true)
                            return
                        }
                        let keepAlive = try await handle(requestHead, body: body, outbound: outbound)
                        if !keepAlive { return }
                    }
                    // An oversized body is refused at once (announced or found while reading), not read to its end.
                    if let refused, let h = head {
                        try await respond(outbound, h, APIResponse.error(DTMError.invalidArgument(refused), gid: nil), close: true)
                        return
                    }
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["error": .string("\(error)")])
        }
    }

    /// Serves one request; returns whether the connection stays open.
    private func handle(_ head: HTTPRequestHead, body: ByteBuffer, outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws -> Bool {
        state.withLock { $0.inFlight += 1 }
        defer { state.withLock { $0.inFlight -= 1 } }
        let started = ContinuousClock.now
        let bytes = body.getBytes(at: body.readerIndex, length: body.readableBytes) ?? []
        let response = await router.handle(
            method: head.method.rawValue, uri: head.uri, authorization: head.headers.first(name: "authorization"), body: bytes)
        let close = !head.isKeepAlive || state.withLock { $0.shuttingDown }
        try await respond(outbound, head, response, close: close)
        logger.debug(
            "http request",
            metadata: [
                "method": .string(head.method.rawValue), "uri": .string(head.uri), "status": .stringConvertible(response.status),
                "ms": .stringConvertible((ContinuousClock.now - started).components.attoseconds / 1_000_000_000_000_000),
            ])
        return !close
    }

    private func respond(
        _ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, _ request: HTTPRequestHead,
        _ response: APIResponse, close: Bool
    ) async throws {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        if close { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: request.version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        try await outbound.write(contentsOf: [.head(head), .body(.byteBuffer(ByteBuffer(bytes: response.body))), .end(nil)])
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
