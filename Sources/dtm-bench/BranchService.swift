import HTTP2
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The branch service the coordinator calls: one gRPC server (the HTTP2 target's nghttp2 server) and one
/// HTTP/1.1 server (NIOHTTP1), both on the loopback, both answering success — or failure when the method
/// name contains `Fail` (gRPC ABORTED; HTTP 409 with a body containing `FAILURE`, spec §7.3/§7.5).
struct BranchService {
    let grpc: GRPCServer
    let http: any Channel

    var grpcPort: Int { grpc.port }
    var httpPort: Int { http.localAddress?.port ?? 0 }

    static func start(counter: BranchCounter) async throws -> BranchService {
        var logger = Logger(label: "dtm-bench.branches")
        logger.logLevel = .warning
        let grpc = try await GRPCServer.start(host: "127.0.0.1", port: 0, logger: logger) { request in
            let ok = counter.record(
                method: BranchCounter.method(ofPath: request.path[...]), gid: request.metadata("dtm-gid").map { $0[...] })
            return ok ? .ok([]) : .error(.aborted, "FAILURE")
        }
        let http = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false)
                    try channel.pipeline.syncOperations.addHandler(HTTPBranchHandler(counter: counter))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return BranchService(grpc: grpc, http: http)
    }

    func shutdown() async {
        try? await http.close()
        await grpc.shutdown()
    }
}

/// One HTTP/1.1 branch connection: each request is answered when it has been read completely, keep-alive.
final class HTTPBranchHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let counter: BranchCounter
    private var succeed = true
    private var keepAlive = true

    private static let success = Array(#"{"dtm_result":"SUCCESS"}"#.utf8)
    private static let failure = Array(#"{"dtm_result":"FAILURE"}"#.utf8)

    init(counter: BranchCounter) { self.counter = counter }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            let uri = head.uri[...]
            succeed = counter.record(method: BranchCounter.method(ofPath: uri), gid: BranchCounter.gid(ofURI: uri))
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            let body = succeed ? Self.success : Self.failure
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(body.count))
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: succeed ? .ok : .conflict, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            if keepAlive {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            } else {
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
