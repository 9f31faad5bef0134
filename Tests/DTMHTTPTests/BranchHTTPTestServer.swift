import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A loopback HTTP/1.1 server for the lean branch client's tests. Paths:
/// `/ok` 200 "ok"; `/slow` answers after 10 s; `/hold` answers once `holdUntil` requests are in flight (or after 5 s);
/// `/chunked` a chunked body "hello chunked world"; `/big` 1 MiB with Content-Length;
/// `/drop-second` answers the first request of a connection and closes the connection on the next without
/// answering (the keep-alive race); `/drop` closes without answering; `/close` answers with `Connection: close`. Every request head is recorded.
final class BranchHTTPTestServer: Sendable {
    struct Stats: Sendable {
        var accepted = 0
        var open = 0
        var inFlight = 0
        var maxInFlight = 0
        var holdReleased = false
        var heads: [HTTPRequestHead] = []
        var bodies: [[UInt8]] = []
        var children: [any Channel] = []
    }

    let stats = Mutex(Stats())
    /// `/hold` answers once this many requests are in flight together.
    let holdUntil: Int

    init(holdUntil: Int = 4) { self.holdUntil = holdUntil }
    private let listener = Mutex<(any Channel)?>(nil)

    var port: Int { listener.withLock { $0?.localAddress?.port ?? 0 } }
    var accepted: Int { stats.withLock { $0.accepted } }
    var open: Int { stats.withLock { $0.open } }

    static func start() async throws -> BranchHTTPTestServer {
        let server = BranchHTTPTestServer()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                server.stats.withLock {
                    $0.accepted += 1
                    $0.open += 1
                    $0.children.append(child)
                }
                child.closeFuture.whenComplete { _ in server.stats.withLock { $0.open -= 1 } }
                return child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try child.pipeline.syncOperations.addHandler(TestBranchHandler(server: server))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        server.listener.withLock { $0 = channel }
        return server
    }

    /// Closes every accepted connection (as a server closing idle keep-alive connections does).
    func closeConnections() async {
        let children = stats.withLock { $0.children }
        for c in children { try? await c.close() }
    }

    func stop() async {
        await closeConnections()
        let l = listener.withLock { $0 }
        try? await l?.close()
    }
}

private final class TestBranchHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let server: BranchHTTPTestServer
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var requests = 0

    init(server: BranchHTTPTestServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
        case .body(let b):
            body += b.readableBytesView
        case .end:
            guard let head else { return }
            requests += 1
            let recorded = body
            server.stats.withLock {
                $0.heads.append(head)
                $0.bodies.append(recorded)
            }
            answer(context: context, path: String(head.uri.prefix { $0 != "?" }))
        }
    }

    private func answer(context: ChannelHandlerContext, path: String) {
        switch path {
        case "/slow":
            let loop = context.eventLoop.assumeIsolated()
            loop.scheduleTask(in: .seconds(10)) { self.respond(context: context, "late") }
        case "/hold":
            server.stats.withLock {
                $0.inFlight += 1
                $0.maxInFlight = max($0.maxInFlight, $0.inFlight)
                if $0.inFlight >= server.holdUntil { $0.holdReleased = true }
            }
            hold(context: context, until: .now() + .seconds(5))
        case "/chunked":
            var headers = HTTPHeaders()
            headers.add(name: "Transfer-Encoding", value: "chunked")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            for part in ["hello ", "chunked ", "world"] {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: part)))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        case "/big":
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: String(1 << 20))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            for _ in 0..<16 {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(repeating: UInt8(ascii: "x"), count: 1 << 16)))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        case "/drop-second" where requests >= 2, "/drop":
            context.close(promise: nil)
        case "/close":
            respond(context: context, "bye", close: true)
        default:
            respond(context: context, "ok")
        }
    }

    /// Answers once `holdUntil` requests were in flight together (or after 5 s).
    private func hold(context: ChannelHandlerContext, until: NIODeadline) {
        if server.stats.withLock({ $0.holdReleased }) || NIODeadline.now() > until {
            server.stats.withLock { $0.inFlight -= 1 }
            respond(context: context, "held")
            return
        }
        context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(5)) { self.hold(context: context, until: until) }
    }

    private func respond(context: ChannelHandlerContext, _ text: String, close: Bool = false) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: String(text.utf8.count))
        if close { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
