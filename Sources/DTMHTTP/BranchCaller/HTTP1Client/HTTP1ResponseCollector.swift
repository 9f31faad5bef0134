import NIOCore
import NIOHTTP1

/// One request to send on a connection.
struct HTTP1Request: Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer?
}

/// A branch's answer: its status, at most `maxBody` bytes of its body, and whether the connection may carry
/// another request (the response was complete, keep-alive, and the request was fully written).
struct HTTP1Response: Sendable {
    var status: Int
    var body: [UInt8]
    var reusable: Bool
}

/// Why a request on a connection failed. `mayRetry` is true only when the server cannot have seen a complete
/// request or cannot have started to answer it (see `HTTP1ConnectionPool.execute` for how it is used).
enum HTTP1ClientError: Error, Equatable, CustomStringConvertible {
    /// The connection was closed before the request was handed to it: nothing was sent.
    case closedBeforeSend
    /// The connection closed or failed (reset, EOF) before any byte of the response arrived.
    case closedBeforeResponse(underlying: String?)
    /// The connection closed or failed after the response had started.
    case closedMidResponse(underlying: String?)
    /// The response was not HTTP/1.1 we can read (parse error, 101 Switching Protocols).
    case protocolError(String)
    /// The branch call's deadline passed (while queued, connecting or waiting for the answer).
    case deadlineExceeded
    /// The pool has been shut down.
    case shutDown

    var mayRetry: Bool {
        switch self {
        case .closedBeforeSend, .closedBeforeResponse: true
        default: false
        }
    }

    var description: String {
        switch self {
        case .closedBeforeSend: "connection closed before the request was sent"
        case .closedBeforeResponse(let e): "connection closed before the response" + (e.map { " (\($0))" } ?? "")
        case .closedMidResponse(let e): "connection closed before the response was complete" + (e.map { " (\($0))" } ?? "")
        case .protocolError(let e): "bad HTTP response: \(e)"
        case .deadlineExceeded: "deadline exceeded"
        case .shutDown: "the branch HTTP client is shut down"
        }
    }
}

/// The last handler of a client connection, after NIO's HTTP/1.1 encoder and decoder: writes one request at a
/// time, collects the response (status, body up to `maxBody`, the rest read and dropped so the connection stays
/// usable), fails the request at its deadline and then closes the connection. Lives on its channel's event loop.
final class HTTP1ResponseCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private struct InFlight {
        var promise: EventLoopPromise<HTTP1Response>
        var deadline: Scheduled<Void>?
        var written = false
        var responseStarted = false
        var skippingInformational = false
        var status = 0
        var keepAlive = false
        var body: [UInt8] = []
    }

    private enum State {
        case idle
        case inFlight(InFlight)
        case closed
    }

    private let maxBody: Int
    private var state = State.idle
    private var context: ChannelHandlerContext?

    init(maxBody: Int) { self.maxBody = maxBody }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        failInFlight(underlying: nil)
        state = .closed
        self.context = nil
    }

    /// Writes `request` and completes `promise` with its response. Called on the event loop.
    func send(_ request: HTTP1Request, deadline: NIODeadline, promise: EventLoopPromise<HTTP1Response>) {
        guard case .idle = state, let context, context.channel.isActive else {
            promise.fail(HTTP1ClientError.closedBeforeSend)
            return
        }
        var flight = InFlight(promise: promise)
        flight.deadline = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.finish(.failure(HTTP1ClientError.deadlineExceeded), close: true)
        }
        state = .inFlight(flight)
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        if let body = request.body, body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { result in
            guard case .inFlight(var flight) = self.state, flight.promise.futureResult === promise.futureResult else { return }
            switch result {
            case .success:
                flight.written = true
                self.state = .inFlight(flight)
            case .failure(let error):
                let started = flight.responseStarted
                self.finish(
                    .failure(started ? HTTP1ClientError.closedMidResponse(underlying: "\(error)") : .closedBeforeResponse(underlying: "\(error)")),
                    close: true)
            }
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
    }

    /// Fails the request in flight (task cancelled) and closes the connection.
    func cancel() {
        finish(.failure(CancellationError()), close: true)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .inFlight(var flight) = state else {
            // An answer nobody asked for: the connection is out of step.
            state = .closed
            context.close(promise: nil)
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            flight.responseStarted = true
            if head.status.code == 101 {
                state = .inFlight(flight)
                finish(.failure(HTTP1ClientError.protocolError("101 Switching Protocols")), close: true)
                return
            }
            // 1xx (100 Continue, 103 Early Hints): an interim answer, the real one follows.
            flight.skippingInformational = head.status.code < 200
            flight.status = Int(head.status.code)
            flight.keepAlive = head.isKeepAlive
        case .body(let buffer):
            if !flight.skippingInformational && flight.body.count < maxBody {
                flight.body += buffer.readableBytesView.prefix(maxBody - flight.body.count)
            }
        case .end:
            if flight.skippingInformational {
                flight.skippingInformational = false
            } else {
                state = .inFlight(flight)
                let response = HTTP1Response(status: flight.status, body: flight.body, reusable: flight.keepAlive && flight.written)
                finish(.success(response), close: !response.reusable)
                return
            }
        }
        state = .inFlight(flight)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failInFlight(underlying: nil)
        state = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            finish(.failure(HTTP1ClientError.protocolError("\(error)")), close: true)
        } else {
            failInFlight(underlying: "\(error)")
        }
        state = .closed
        context.close(promise: nil)
    }

    private func failInFlight(underlying: String?) {
        guard case .inFlight(let flight) = state else { return }
        let error: HTTP1ClientError = flight.responseStarted ? .closedMidResponse(underlying: underlying) : .closedBeforeResponse(underlying: underlying)
        finish(.failure(error), close: true)
    }

    /// Completes the request in flight, if any; after a failure or a response that does not allow another request
    /// the connection is closed and takes no more requests.
    private func finish(_ result: Result<HTTP1Response, any Error>, close: Bool) {
        guard case .inFlight(let flight) = state else { return }
        flight.deadline?.cancel()
        state = close ? .closed : .idle
        if close { context?.close(promise: nil) }
        flight.promise.completeWith(result)
    }
}
