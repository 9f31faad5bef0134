import NIOCore
import Synchronization

/// The most connections one listener keeps open at once (`MaxConnections`). Past it a new connection gets a short
/// refusal in its listener's protocol and is closed, so that a flood of idle connections cannot use up the
/// process's file descriptors and starve the branch calls and the store.
public final class ConnectionLimit: Sendable {
    public let maximum: Int
    private let open = Atomic<Int>(0)
    private let refused = Atomic<Int>(0)

    public init(maximum: Int) { self.maximum = maximum }

    public var openCount: Int { open.load(ordering: .relaxed) }

    /// Counts `channel` until it closes and returns nil, or, when `maximum` are open already, does not count it and
    /// returns how many connections have been refused so far (for a log line that does not flood).
    public func admit(_ channel: any Channel) -> Int? {
        var current = open.load(ordering: .relaxed)
        while true {
            if current >= maximum { return refused.add(1, ordering: .relaxed).newValue }
            let (exchanged, original) = open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
        channel.closeFuture.whenComplete { _ in self.open.subtract(1, ordering: .relaxed) }
        return nil
    }

    /// Whether the `n`-th refusal should be logged: the first, then at 10, 100, 1000, … and every 10,000th.
    public static func shouldLog(refusal n: Int) -> Bool {
        if n % 10_000 == 0 { return true }
        var p = 1
        while p <= n / 10 { p *= 10 }  // never past n, so it cannot overflow
        return p == n
    }
}

/// Writes `refusal` as soon as the connection is active, then closes it; ignores whatever the peer sends.
public final class RefuseConnectionHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer

    private let refusal: [UInt8]
    private var refused = false

    public init(refusal: [UInt8]) { self.refusal = refusal }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        refuse(context)
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    private func refuse(_ context: ChannelHandlerContext) {
        guard !refused else { return }
        refused = true
        let channel = context.channel
        context.writeAndFlush(NIOAny(channel.allocator.buffer(bytes: refusal))).whenComplete { _ in channel.close(promise: nil) }
    }
}
