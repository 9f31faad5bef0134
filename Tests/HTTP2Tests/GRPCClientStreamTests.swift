import Logging
import NIOCore
import NIOPosix
import Testing
@testable import HTTP2

@Suite("bidirectional-streaming client calls over loopback")
struct GRPCClientStreamTests {
    /// A server whose `/test.Chat/Echo` stream answers each message with it, and `/test.Chat/Big` with 64 KiB.
    static func chatServer() async throws -> GRPCServer {
        var configuration = GRPCServer.Configuration()
        configuration.shutdownGracePeriod = .milliseconds(200)
        configuration.streamHandlers["/test.Chat/Echo"] = { .ok($0.message) }
        configuration.streamHandlers["/test.Chat/Big"] = { request in .ok(Array(repeating: request.message.first ?? 0, count: 64 * 1024)) }
        configuration.streamHandlers["/test.Chat/Refuse"] = { _ in .error(.permissionDenied, "not you") }
        return try await GRPCServer.start(host: "127.0.0.1", port: 0, configuration: configuration, logger: Logger(label: "test")) {
            .unimplemented(path: $0.path)
        }
    }

    static func connect(_ server: GRPCServer) async throws -> GRPCClientConnection {
        try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port, logger: Logger(label: "test"))
    }

    @Test("messages sent on a stream are answered in order; closing the sending side ends the call OK")
    func echo() async throws {
        let server = try await Self.chatServer()
        let connection = try await Self.connect(server)
        let stream = await connection.openStream(path: "/test.Chat/Echo")
        for i in 0..<5 {
            #expect(await stream.send(Array("m\(i)".utf8)))
            #expect(await stream.next().map { String(decoding: $0, as: UTF8.self) } == "m\(i)")
        }
        stream.closeSend()
        #expect(await stream.next() == nil)
        #expect(stream.result?.status.code == .ok)
        #expect(await !stream.send([1]))  // over
        // Unary calls share the connection with streams.
        let unary = await connection.unary(path: "/test.Nothing/Here", message: [], timeout: .seconds(5))
        #expect(unary.status.code == .unimplemented)
        await connection.close()
        await server.shutdown()
    }

    @Test("a reader that stops reading stops the server at the stream window; reading again lets everything through")
    func flowControl() async throws {
        let server = try await Self.chatServer()
        let connection = try await Self.connect(server)
        let stream = await connection.openStream(path: "/test.Chat/Big")
        // 40 answers of 64 KiB: 2.5 MiB, more than the 1 MiB stream window.
        for i in 0..<40 { #expect(await stream.send([UInt8(i)])) }
        try await Task.sleep(for: .milliseconds(500))
        let buffered = stream.bufferedCount
        #expect(buffered > 0)
        #expect(buffered <= 16, "received beyond the 1 MiB window without reading: \(buffered) × 64 KiB")
        for i in 0..<40 {
            let message = await stream.next()
            #expect(message?.count == 64 * 1024)
            #expect(message?.first == UInt8(i))
        }
        stream.closeSend()
        #expect(await stream.next() == nil)
        #expect(stream.result?.status.code == .ok)
        await connection.close()
        await server.shutdown()
    }

    @Test("messages left unread by cancelled streams give their bytes back to the connection's window")
    func unreadBytesReleased() async throws {
        let server = try await Self.chatServer()
        let connection = try await Self.connect(server)
        // 20 streams × 1 MiB unread (15 whole answers of 64 KiB, and part of the 16th: the stream window is full) =
        // 20 MiB, more than the 16 MiB connection window.
        for _ in 0..<20 {
            let stream = await connection.openStream(path: "/test.Chat/Big")
            for i in 0..<16 { #expect(await stream.send([UInt8(i)])) }
            let deadline = ContinuousClock.now + .seconds(5)
            while stream.bufferedCount < 15, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            #expect(stream.bufferedCount == 15)
            stream.cancel()
        }
        let last = await connection.openStream(path: "/test.Chat/Big")
        for i in 0..<20 { #expect(await last.send([UInt8(i)])) }
        let reader = Task { () -> Int in
            var n = 0
            while n < 20, let m = await last.next(), m.count == 64 * 1024 { n += 1 }
            return n
        }
        let watchdog = Task {
            try await Task.sleep(for: .seconds(10))
            last.cancel()  // a stalled connection ends the reader instead of hanging the suite
        }
        #expect(await reader.value == 20, "the connection stalled: unread bytes of cancelled streams were never released")
        watchdog.cancel()
        last.closeSend()
        await connection.close()
        await server.shutdown()
    }

    /// Accepts connections and never answers: a peer that vanished without closing them.
    final class Silence: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }

    @Test("a peer that stops answering PINGs is dropped: its open streams end instead of waiting for ever")
    func keepAlive() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Silence()) } }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(server.localAddress?.port)
        let connection = try await GRPCClientConnection.connect(
            host: "127.0.0.1", port: port, keepAlive: .milliseconds(200), logger: Logger(label: "test"))
        let stream = await connection.openStream(path: "/test.Chat/Echo")
        let started = ContinuousClock.now
        #expect(await stream.next() == nil)
        #expect(ContinuousClock.now - started < .seconds(3))
        #expect(stream.result?.status.code == .unavailable)
        #expect(stream.result?.status.message.contains("PING") == true, "\(String(describing: stream.result?.status))")
        #expect(!connection.isUsable)
        try await server.close()
    }

    @Test("cancelling ends the call at once: the reader gets nil and the status is CANCELLED")
    func cancel() async throws {
        let server = try await Self.chatServer()
        let connection = try await Self.connect(server)
        let stream = await connection.openStream(path: "/test.Chat/Echo")
        let reader = Task { await stream.next() }
        try await Task.sleep(for: .milliseconds(50))
        stream.cancel()
        #expect(await reader.value == nil)
        #expect(stream.result?.status.code == .cancelled)
        // A task cancelled while reading cancels its stream too.
        let second = await connection.openStream(path: "/test.Chat/Echo")
        let waiting = Task { await second.next() }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        #expect(await waiting.value == nil)
        #expect(second.result?.status.code == .cancelled)
        #expect(connection.isUsable)
        await connection.close()
        await server.shutdown()
    }

    @Test("an error status from the server ends the stream with that status; a closed connection ends every stream")
    func errors() async throws {
        let server = try await Self.chatServer()
        let connection = try await Self.connect(server)
        let refused = await connection.openStream(path: "/test.Chat/Refuse")
        #expect(await refused.send([1]))
        #expect(await refused.next() == nil)
        #expect(refused.result?.status.code == .permissionDenied)
        #expect(refused.result?.status.message == "not you")
        let open = await connection.openStream(path: "/test.Chat/Echo")
        await server.shutdown()
        #expect(await open.next() == nil)
        #expect(open.result != nil)
        #expect(open.result?.status.code != .ok)
        await connection.close()
    }
}
