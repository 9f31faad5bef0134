import Logging
import NIOCore
import NIOEmbedded
import Synchronization
import Testing
@testable import HTTP2

/// The server's NIO glue on a testing channel: no sockets, the client is an in-memory session.
@Suite("GRPCServerChannelHandler on NIOAsyncTestingChannel")
struct GRPCServerChannelHandlerTests {
    /// Holds the client session and the call outcome; only the test's task touches it.
    final class ClientSide {
        let session: H2ClientSession
        var result: GRPCCallResult?
        var received = 0
        init() throws { session = try H2ClientSession(authority: "127.0.0.1:1", logger: Logger(label: "test")) }
    }

    /// A connected testing channel whose pipeline holds a server handler around a fresh session.
    static func makeChannel(grace: TimeAmount = .seconds(5), handler: @escaping GRPCServer.Handler) async throws -> NIOAsyncTestingChannel {
        let channel = try await NIOAsyncTestingChannel { channel in
            let session = try H2ServerSession(logger: Logger(label: "test"))
            try channel.pipeline.syncOperations.addHandler(
                GRPCServerChannelHandler(session: session, handler: handler, shutdownGracePeriod: grace, logger: Logger(label: "test")))
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        return channel
    }

    /// Moves client output into the channel (read + read-complete, as a socket delivers it) and
    /// channel output into the client, once.
    static func pump(_ channel: NIOAsyncTestingChannel, _ client: ClientSide) async throws {
        if let out = try client.session.pendingOutput() {
            try await channel.writeInbound(out)
            channel.pipeline.fireChannelReadComplete()
        }
        while let out = try await channel.readOutbound(as: ByteBuffer.self) {
            client.received += out.readableBytes
            try client.session.receive(out)
        }
    }

    @Test("back-pressure: nothing is written while unwritable; a 3 MiB answer flows once writable")
    func backPressure() async throws {
        let released = Mutex(false)
        let big = bytes(3 * 1024 * 1024)
        let channel = try await Self.makeChannel { _ in
            while !released.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(2)) }
            return .ok(big)
        }
        let client = try ClientSide()
        client.session.startCall(path: "/a/B", message: [1]) { [client] in client.result = $0 }
        try await Self.pump(channel, client)
        try await Self.pump(channel, client)  // SETTINGS acks

        channel.isWritable = false
        let before = client.received
        released.withLock { $0 = true }
        try await Task.sleep(for: .milliseconds(100))
        try await Self.pump(channel, client)
        #expect(client.received == before, "no bytes while unwritable")
        #expect(client.result == nil)

        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        for _ in 0..<1000 where client.result == nil {
            try await Self.pump(channel, client)
            try await Task.sleep(for: .milliseconds(1))
        }
        #expect(client.result?.status == .ok)
        #expect(client.result?.message == big)
        _ = try? await channel.finish()
    }

    @Test("shutdown event: GOAWAY reaches the client, the server closes the idle connection after the PING round trip")
    func shutdownEvent() async throws {
        let channel = try await Self.makeChannel { .ok($0.message) }
        let client = try ClientSide()
        client.session.startCall(path: "/a/B", message: [4]) { [client] in client.result = $0 }
        for _ in 0..<200 where client.result == nil {
            try await Self.pump(channel, client)
            try await Task.sleep(for: .milliseconds(1))
        }
        #expect(client.result?.message == [4])
        try await channel.triggerUserOutboundEvent(GRPCServerShutdownEvent())
        for _ in 0..<10 { try await Self.pump(channel, client) }  // notice + PING, PING ACK, final GOAWAY
        // An idle nghttp2 client treats the notice as the end (it ignores later frames, so the
        // final GOAWAY does not change goawayLastStreamID); the server closes after the final one.
        #expect(client.session.goawayLastStreamID != nil)
        #expect(!client.session.canStartCalls)
        #expect(!client.session.isActive)
        try await channel.closeFuture.get()
    }

    @Test("shutdown grace period: a peer that never answers the PING is closed anyway")
    func shutdownGrace() async throws {
        let channel = try await Self.makeChannel(grace: .milliseconds(50)) { .ok($0.message) }
        let client = try ClientSide()
        try await Self.pump(channel, client)
        try await channel.triggerUserOutboundEvent(GRPCServerShutdownEvent())
        // No pumping: our PING stays unanswered. The testing loop's clock is virtual.
        await channel.testingEventLoop.advanceTime(by: .milliseconds(60))
        try await channel.closeFuture.get()
    }
}
