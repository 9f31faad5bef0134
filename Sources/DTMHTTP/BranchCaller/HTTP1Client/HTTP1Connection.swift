import NIOCore
import NIOHTTP1
import NIOPosix

/// One keep-alive HTTP/1.1 connection to a branch service: NIO's HTTP/1.1 encoder and decoder and an
/// `HTTP1ResponseCollector`. Carries one request at a time; `HTTP1ConnectionPool` decides who uses it.
final class HTTP1Connection: Sendable {
    let channel: any Channel
    private let collector: NIOLoopBound<HTTP1ResponseCollector>

    private init(channel: any Channel, collector: NIOLoopBound<HTTP1ResponseCollector>) {
        self.channel = channel
        self.collector = collector
    }

    var isActive: Bool { channel.isActive }

    /// Connects to `endpoint` (TCP_NODELAY), failing after `timeout`.
    static func connect(
        to endpoint: HTTP1Endpoint, group: any EventLoopGroup, timeout: TimeAmount, maxBody: Int
    ) async throws -> HTTP1Connection {
        try await ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(timeout)
            .connect(host: endpoint.host, port: endpoint.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let collector = HTTP1ResponseCollector(maxBody: maxBody)
                    // No NIO header validation per request (~4 % of an HTTP saga): HTTP1Target.requestHead has
                    // already refused any name or value the wire cannot carry (branch headers are checked at submit
                    // too; a row stored before that check goes to AsyncHTTPClient, which refuses it).
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try channel.pipeline.syncOperations.addHandler(collector)
                    return HTTP1Connection(channel: channel, collector: NIOLoopBound(collector, eventLoop: channel.eventLoop))
                }
            }
    }

    /// Sends `request` and waits for its response until `deadline`. On any error the connection is closed.
    func execute(_ request: HTTP1Request, deadline: NIODeadline) async throws -> HTTP1Response {
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: HTTP1Response.self)
        let collector = self.collector
        if loop.inEventLoop {
            collector.value.send(request, deadline: deadline, promise: promise)
        } else {
            loop.execute { collector.value.send(request, deadline: deadline, promise: promise) }
        }
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            loop.execute { collector.value.cancel() }
        }
    }

    func close() {
        channel.close(promise: nil)
    }
}
