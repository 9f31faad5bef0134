package import Logging
package import NIOCore
import Synchronization

/// The most connections one listener keeps open at once (`MaxConnections`). Past it a new connection gets a short
/// refusal in its listener's protocol and is closed, so that a flood of idle connections cannot use up the
/// process's file descriptors and starve the branch calls and the store.
package final class ConnectionLimit: Sendable {
    package let maximum: Int
    /// What a refused connection is sent before it is closed, in its listener's protocol.
    private let refusal: [UInt8]
    /// "HTTP" or "gRPC", for the log line.
    private let listener: String
    private let logger: Logger
    private let open = Atomic<Int>(0)
    private let refused = Atomic<Int>(0)

    package init(maximum: Int, refusal: [UInt8], listener: String, logger: Logger) {
        self.maximum = maximum
        self.refusal = refusal
        self.listener = listener
        self.logger = logger
    }

    package var openCount: Int { open.load(ordering: .relaxed) }

    /// For a child channel's initializer: counts `channel` until it closes and returns true, or, when `maximum` are
    /// open already, gives it a `RefuseConnectionHandler` (and nothing else should be added) and returns false.
    package func admit(_ channel: any Channel) throws -> Bool {
        var current = open.load(ordering: .relaxed)
        while true {
            if current >= maximum {
                let refusals = refused.add(1, ordering: .relaxed).newValue
                if Self.shouldLog(refusal: refusals) {
                    logger.warning(
                        "\(listener) connection refused: MaxConnections reached",
                        metadata: ["max_connections": .stringConvertible(maximum), "refused_so_far": .stringConvertible(refusals)])
                }
                try channel.pipeline.syncOperations.addHandler(RefuseConnectionHandler(refusal: refusal))
                return false
            }
            let (exchanged, original) = open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
        channel.closeFuture.whenComplete { _ in self.open.subtract(1, ordering: .relaxed) }
        return true
    }

    /// Whether the `n`-th refusal should be logged: the first, then at 10, 100, 1000, … and every 10,000th.
    package static func shouldLog(refusal n: Int) -> Bool {
        if n % 10_000 == 0 { return true }
        var p = 1
        while p <= n / 10 { p *= 10 }  // never past n, so it cannot overflow
        return p == n
    }
}

/// Writes `refusal` as soon as the connection is active, then closes it; ignores whatever the peer sends.
package final class RefuseConnectionHandler: ChannelInboundHandler {
    package typealias InboundIn = ByteBuffer

    private let refusal: [UInt8]
    private var refused = false

    package init(refusal: [UInt8]) { self.refusal = refusal }

    package func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context) }
    }

    package func channelActive(context: ChannelHandlerContext) {
        refuse(context)
        context.fireChannelActive()
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    private func refuse(_ context: ChannelHandlerContext) {
        guard !refused else { return }
        refused = true
        let channel = context.channel
        context.writeAndFlush(NIOAny(channel.allocator.buffer(bytes: refusal))).whenComplete { _ in channel.close(promise: nil) }
    }
}
