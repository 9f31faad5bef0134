import DTMCore
import EventLoopSupport
import Logging
import NIOCore
import NIOHTTP1

/// Serves the requests of one HTTP/1.1 connection, after NIO's server pipeline (which holds pipelined requests
/// back until the answer before them is written, so at most one request is handled at a time).
///
/// The head is checked first (browser-origin rules and token, `APIRouter.admission`): a refused request's body is
/// read and dropped, never held, and the refusal answered at its end. An admitted body is collected up to
/// `limits.maxBodyBytes`; an oversized one is refused at once (announced by Content-Length or found while reading)
/// and the connection closed without reading the rest. A complete request
/// is handed to the `APIRouter` in a task that prefers this connection's event loop, and so do the rounds it
/// starts in the background (`RoundExecutor.preferred`): reading, answering and the branch calls of those rounds
/// then stay on one thread (see `EventLoopTaskExecutor`).
///
/// Confinement: everything here runs on the connection's event loop.
final class HTTPAPIConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: HTTPAPIServer
    private var context: ChannelHandlerContext?
    private var executor: EventLoopTaskExecutor?
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    /// The answer of a request refused on its head: its body is dropped as it arrives.
    private var refusal: APIResponse?
    /// Set once an answer asked for the connection to close: later input is ignored.
    private var closing = false

    init(server: HTTPAPIServer) { self.server = server }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        executor = EventLoopTaskExecutor(eventLoop: context.eventLoop)
    }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head(let h):
            body.clear()
            if let length = h.headers.first(name: "content-length").flatMap(Int.init), length > server.limits.maxBodyBytes {
                refuse(h, "request body of \(length) bytes exceeds the limit of \(server.limits.maxBodyBytes) bytes")
                return
            }
            head = h
            refusal = server.router.admission(
                method: h.method.rawValue, uri: h.uri, authorization: h.headers.first(name: "authorization"),
                headers: Self.browserHeaders(h.headers))
        case .body(var chunk):
            guard let h = head, refusal == nil else { return }
            if body.readableBytes + chunk.readableBytes > server.limits.maxBodyBytes {
                body.clear()
                refuse(h, "request body exceeds the limit of \(server.limits.maxBodyBytes) bytes")
                return
            }
            body.writeBuffer(&chunk)
        case .end:
            guard let h = head else { return }
            head = nil
            if let answer = refusal {
                refusal = nil
                respond(to: h, answer, close: !h.isKeepAlive || server.isShuttingDown)
                return
            }
            dispatch(h, body: body.readBytes(length: body.readableBytes) ?? [])
        }
    }

    static func browserHeaders(_ headers: HTTPHeaders) -> BrowserOriginPolicy.Headers {
        BrowserOriginPolicy.Headers(
            host: headers.first(name: "host"), origin: headers.first(name: "origin"), fetchSite: headers.first(name: "sec-fetch-site"),
            fromBrowser: headers.contains(name: "sec-fetch-mode") || headers.contains(name: "sec-fetch-dest"))
    }

    /// An oversized body: answered with 400 at once, the rest of it is not read.
    private func refuse(_ head: HTTPRequestHead, _ reason: String) {
        self.head = nil
        respond(to: head, APIResponse.error(DTMError.invalidArgument(reason), gid: nil), close: true)
    }

    private func dispatch(_ head: HTTPRequestHead, body: [UInt8]) {
        guard let context else { return }
        let server = self.server
        let executor = self.executor
        let eventLoop = context.eventLoop
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        server.requestStarted()
        let started = ContinuousClock.now
        let trace =
            server.router.tracing
            ? TraceHeaders.received(traceparent: head.headers.first(name: "traceparent"), tracestate: head.headers.first(name: "tracestate")) : nil
        Task(executorPreference: executor) {
            let response = await RoundExecutor.$preferred.withValue(executor) {
                await server.router.handleAdmitted(
                    method: head.method.rawValue, uri: head.uri, authorization: head.headers.first(name: "authorization"), body: body,
                    trace: trace)
            }
            let finish: @Sendable () -> Void = {
                loopBound.value.respond(to: head, response, close: !head.isKeepAlive || server.isShuttingDown)
                server.requestFinished()
                server.logger.debug(
                    "http request",
                    metadata: [
                        "method": .string(head.method.rawValue), "uri": .string(head.uri), "status": .stringConvertible(response.status),
                        "ms": .stringConvertible((ContinuousClock.now - started).wholeMilliseconds),
                    ])
            }
            if eventLoop.inEventLoop { finish() } else { eventLoop.execute(finish) }
        }
    }

    private func respond(to request: HTTPRequestHead, _ response: APIResponse, close: Bool) {
        guard let context, !closing else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        for (name, value) in response.headers.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
        if close { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: request.version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        var buffer = context.channel.allocator.buffer(capacity: response.body.count)
        buffer.writeBytes(response.body)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        if close {
            closing = true
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
