import NIOCore
import NIOHTTP1
import NIOPosix

/// A status code and body, as the bench's HTTP client read them.
struct HTTPAnswer: Sendable {
    var status: Int
    var body: [UInt8]
}

enum HTTPClientError: Error {
    case connectionClosed
}

/// One keep-alive HTTP/1.1 connection on NIO, for one caller at a time (no pool, no redirects, no TLS):
/// cheaper per request than a general-purpose client, which matters because the load generator shares the
/// machine with the coordinator.
final class HTTPClientConnection: Sendable {
    let channel: any Channel
    let authority: String

    private init(channel: any Channel, authority: String) {
        self.channel = channel
        self.authority = authority
    }

    /// Connects to `host:port`.
    static func connect(_ authority: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> HTTPClientConnection {
        let (host, port) = try splitAuthority(authority)
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(3))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(HTTPClientExchangeHandler())
                }
            }
            .connect(host: host, port: port)
            .get()
        return HTTPClientConnection(channel: channel, authority: authority)
    }

    /// Sends one request and returns its answer; throws when the connection broke.
    func request(_ method: HTTPMethod, _ uri: String, body: ByteBuffer? = nil) async throws -> HTTPAnswer {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: authority)
        if let body {
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(body.readableBytes))
        }
        let promise = channel.eventLoop.makePromise(of: HTTPAnswer.self)
        let exchange = HTTPClientExchange(
            head: HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers), body: body, promise: promise)
        channel.writeAndFlush(exchange, promise: nil)
        return try await promise.futureResult.get()
    }

    func close() async {
        try? await channel.close()
    }

    static func splitAuthority(_ authority: String) throws -> (String, Int) {
        guard let colon = authority.lastIndex(of: ":"), let port = Int(authority[authority.index(after: colon)...]) else {
            throw ChannelError.connectPending
        }
        return (String(authority[..<colon]), port)
    }
}

/// A request on its way out and the promise its answer completes.
struct HTTPClientExchange {
    var head: HTTPRequestHead
    var body: ByteBuffer?
    var promise: EventLoopPromise<HTTPAnswer>
}

/// Writes requests and pairs answers with them in order (HTTP/1.1: one answer per request, in sequence).
final class HTTPClientExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientExchange
    typealias OutboundOut = HTTPClientRequestPart

    private var waiting = CircularBuffer<EventLoopPromise<HTTPAnswer>>()
    private var status = 0
    private var body: [UInt8] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        // Closed already (say by the server's idle timeout while this worker's slot was unused): channelInactive
        // has run and will not fail this request, so fail it here, or its caller would wait for ever.
        guard context.channel.isActive else {
            exchange.promise.fail(HTTPClientError.connectionClosed)
            promise?.fail(HTTPClientError.connectionClosed)
            return
        }
        waiting.append(exchange.promise)
        context.write(wrapOutboundOut(.head(exchange.head)), promise: nil)
        if let body = exchange.body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
            body.removeAll(keepingCapacity: true)
        case .body(var buffer):
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            if let promise = waiting.popFirst() { promise.succeed(HTTPAnswer(status: status, body: body)) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll()
        context.close(promise: nil)
    }

    private func failAll() {
        while let promise = waiting.popFirst() { promise.fail(HTTPClientError.connectionClosed) }
    }
}
