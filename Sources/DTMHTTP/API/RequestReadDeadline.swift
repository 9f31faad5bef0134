import NIOCore
import NIOHTTP1

/// The read deadline of the request being received on one connection: armed by the first byte of a
/// request (before the HTTP parser, so a head dripped byte by byte is covered), disarmed by the request's
/// `.end` (after the parser). When it fires the connection is closed. The idle timeout alone would let
/// a client that sends one byte per interval hold a connection for ever.
///
/// Confinement: both watchers run on the connection's event loop, the only place this is touched.
final class RequestReadDeadline {
    let timeout: TimeAmount
    fileprivate var timer: Scheduled<Void>?

    init(timeout: TimeAmount) { self.timeout = timeout }
}

/// Before the HTTP decoder: arms the deadline when bytes arrive while no request is in progress.
final class RequestStartWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let deadline: RequestReadDeadline

    init(_ deadline: RequestReadDeadline) { self.deadline = deadline }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if deadline.timer == nil {
            let channel = context.channel
            deadline.timer = context.eventLoop.scheduleTask(in: deadline.timeout) { channel.close(promise: nil) }
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline.timer?.cancel()
        deadline.timer = nil
        context.fireChannelInactive()
    }
}

/// After the HTTP decoder: a complete request disarms the deadline.
final class RequestEndWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    private let deadline: RequestReadDeadline

    init(_ deadline: RequestReadDeadline) { self.deadline = deadline }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) {
            deadline.timer?.cancel()
            deadline.timer = nil
        }
        context.fireChannelRead(data)
    }
}
