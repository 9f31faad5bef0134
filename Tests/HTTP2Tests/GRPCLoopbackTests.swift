import Logging
import EventLoopSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import HTTP2

@Suite("gRPC server and connection pool over loopback")
struct GRPCLoopbackTests {
    static func echoServer(configuration: GRPCServer.Configuration = .init()) async throws -> GRPCServer {
        try await GRPCServer.start(host: "127.0.0.1", port: 0, configuration: configuration, logger: Logger(label: "test")) { request in
            switch request.path {
            case "/test.Echo/Echo":
                return .ok(request.message, metadata: [("x-gid", request.metadata("dtm-gid") ?? "")])
            case "/test.Echo/Fail":
                return .error(.aborted, "FAILURE: ü 100%")
            case "/test.Echo/Sleep":
                try? await Task.sleep(for: .seconds(5))
                return .ok([])
            default:
                return .unimplemented(path: request.path)
            }
        }
    }

    @Test("200 concurrent unary calls through the pool all echo correctly")
    func concurrentEcho() async throws {
        let server = try await Self.echoServer()
        let pool = GRPCConnectionPool(logger: Logger(label: "test"))
        let authority = "127.0.0.1:\(server.port)"
        let failures = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<200 {
                group.addTask {
                    let message = Array("message \(i)".utf8)
                    let result = await pool.unary(
                        authority: authority, path: "/test.Echo/Echo", metadata: [("dtm-gid", "gid-\(i)")],
                        message: message, timeout: .seconds(10))
                    return result.isOK && result.message == message && result.metadata.contains { $0 == ("x-gid", "gid-\(i)") }
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 0 : 1) }
        }
        #expect(failures == 0)
        await pool.shutdown()
        await server.shutdown()
    }

    @Test("calls made on an event loop use a connection of that loop; the server runs handlers on its connection's loop")
    func eventLoopAffinity() async throws {
        let server = try await GRPCServer.start(host: "127.0.0.1", port: 0, logger: Logger(label: "test")) { request in
            let onLoop = request.taskExecutor.map { ($0 as? EventLoopTaskExecutor)?.eventLoop.inEventLoop == true } ?? false
            return .ok(Array((onLoop ? "loop" : "elsewhere").utf8))
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        let pool = GRPCConnectionPool(group: group, logger: Logger(label: "test"))
        let authority = "127.0.0.1:\(server.port)"
        for loop in loops + loops {
            let answer = await Task(executorPreference: EventLoopTaskExecutor(eventLoop: loop)) {
                let result = await pool.unary(authority: authority, path: "/test.Echo/Where", message: [], timeout: .seconds(5))
                #expect(loop.inEventLoop)  // resumed on the same loop
                return String(decoding: result.message, as: UTF8.self)
            }.value
            #expect(answer == "loop")
        }
        let used = pool.connectionLoops(authority)
        #expect(used.count == 2)
        #expect(used.map { ObjectIdentifier($0) } == loops.map { ObjectIdentifier($0) })
        await pool.shutdown()
        await server.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("concurrent calls on one loop share its connection; another loop still gets a connection of its own")
    func busyLoopDoesNotTakeEveryConnection() async throws {
        let server = try await GRPCServer.start(host: "127.0.0.1", port: 0, logger: Logger(label: "test")) { _ in
            try? await Task.sleep(for: .milliseconds(200))
            return .ok([])
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        let pool = GRPCConnectionPool(group: group, logger: Logger(label: "test"))
        let authority = "127.0.0.1:\(server.port)"
        let first = EventLoopTaskExecutor(eventLoop: loops[0])
        // Four calls in flight together on the first loop, then one from the second loop.
        let busy = (0..<4).map { _ in
            Task(executorPreference: first) {
                await pool.unary(authority: authority, path: "/test.Slow/Call", message: [], timeout: .seconds(5)).status.code
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        let resumedOnLoop = await Task(executorPreference: EventLoopTaskExecutor(eventLoop: loops[1])) {
            _ = await pool.unary(authority: authority, path: "/test.Slow/Call", message: [], timeout: .seconds(5))
            return loops[1].inEventLoop
        }.value
        for task in busy { #expect(await task.value == .ok) }
        #expect(resumedOnLoop)
        let used = pool.connectionLoops(authority).map { ObjectIdentifier($0) }
        #expect(used == loops.map { ObjectIdentifier($0) })
        await pool.shutdown()
        await server.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("idle connections are closed after idleTimeout and their authorities forgotten; a later call reconnects")
    func idleConnectionsAreClosed() async throws {
        let server = try await Self.echoServer()
        var configuration = GRPCConnectionPool.Configuration()
        configuration.idleTimeout = .seconds(1)
        let pool = GRPCConnectionPool(configuration: configuration, logger: Logger(label: "test"))
        let authority = "127.0.0.1:\(server.port)"
        #expect(await pool.unary(authority: authority, path: "/test.Echo/Echo", message: [1], timeout: .seconds(5)).status.code == .ok)
        #expect(pool.authorityCount == 1)
        // A refused connection leaves an authority behind too, until the sweep.
        _ = await pool.unary(authority: "127.0.0.1:1", path: "/test.Echo/Echo", message: [], timeout: .seconds(2))
        #expect(pool.authorityCount >= 1)
        let deadline = ContinuousClock.now + .seconds(5)
        while pool.authorityCount > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(pool.authorityCount == 0)
        #expect(pool.connectionLoops(authority).isEmpty)
        #expect(await pool.unary(authority: authority, path: "/test.Echo/Echo", message: [2], timeout: .seconds(5)).status.code == .ok)
        await pool.shutdown()
        await server.shutdown()
    }

    @Test("error status, unknown method, 3 MiB payload, deadline over a real socket")
    func statusesOverSocket() async throws {
        let server = try await Self.echoServer()
        let pool = GRPCConnectionPool(logger: Logger(label: "test"))
        let authority = "127.0.0.1:\(server.port)"
        let failed = await pool.unary(authority: authority, path: "/test.Echo/Fail", message: [], timeout: .seconds(5))
        #expect(failed.status == GRPCStatus(.aborted, "FAILURE: ü 100%"))
        let unknown = await pool.unary(authority: authority, path: "/test.Echo/Nope", message: [], timeout: .seconds(5))
        #expect(unknown.status.code == .unimplemented)
        let big = bytes(3 * 1024 * 1024)
        let echoed = await pool.unary(authority: authority, path: "/test.Echo/Echo", message: big, timeout: .seconds(20))
        #expect(echoed.isOK)
        #expect(echoed.message == big)
        let start = ContinuousClock.now
        let slow = await pool.unary(authority: authority, path: "/test.Echo/Sleep", message: [], timeout: .milliseconds(200))
        #expect(slow.status.code == .deadlineExceeded)
        #expect(ContinuousClock.now - start < .seconds(3))
        await pool.shutdown()
        await server.shutdown()
    }

    @Test("connection refused is UNAVAILABLE; the pool reconnects after the server restarts")
    func reconnect() async throws {
        let first = try await Self.echoServer()
        let port = first.port
        let pool = GRPCConnectionPool(logger: Logger(label: "test"))
        let authority = "127.0.0.1:\(port)"
        #expect(await pool.unary(authority: authority, path: "/test.Echo/Echo", message: [1], timeout: .seconds(5)).isOK)
        await first.shutdown()
        let down = await pool.unary(authority: authority, path: "/test.Echo/Echo", message: [1], timeout: .seconds(5))
        #expect(down.status.code == .unavailable)
        let second = try await GRPCServer.start(host: "127.0.0.1", port: port, logger: Logger(label: "test")) { .ok($0.message + [2]) }
        let again = await pool.unary(authority: authority, path: "/test.Echo/Echo", message: [1], timeout: .seconds(5))
        #expect(again.message == [1, 2])
        await pool.shutdown()
        await second.shutdown()
    }

    @Test("graceful server shutdown lets an in-flight call finish")
    func gracefulShutdown() async throws {
        let started = Mutex(false)
        let server = try await GRPCServer.start(host: "127.0.0.1", port: 0, logger: Logger(label: "test")) { request in
            started.withLock { $0 = true }
            try? await Task.sleep(for: .milliseconds(300))
            return .ok(request.message)
        }
        let pool = GRPCConnectionPool(logger: Logger(label: "test"))
        let authority = "127.0.0.1:\(server.port)"
        async let inFlight = pool.unary(authority: authority, path: "/s/M", message: [5], timeout: .seconds(5))
        while !started.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        await server.shutdown()
        let result = await inFlight
        #expect(result.message == [5])
        await pool.shutdown()
    }

    @Test("cancelling the calling task resets the stream: CANCELLED at once, server handler cancelled")
    func cancellation() async throws {
        let handlerCancelled = Mutex(false)
        let handlerStarted = Mutex(false)
        let server = try await GRPCServer.start(host: "127.0.0.1", port: 0, logger: Logger(label: "test")) { _ in
            handlerStarted.withLock { $0 = true }
            try? await Task.sleep(for: .seconds(5))
            handlerCancelled.withLock { $0 = Task.isCancelled }
            return .ok([])
        }
        let pool = GRPCConnectionPool(logger: Logger(label: "test"))
        let authority = "127.0.0.1:\(server.port)"
        let task = Task { await pool.unary(authority: authority, path: "/s/M", message: [], timeout: .seconds(10)) }
        // Cancel only once the request reached the handler (a fixed sleep is a race on a loaded machine).
        for _ in 0..<500 where !handlerStarted.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
        #expect(handlerStarted.withLock { $0 })
        let start = ContinuousClock.now
        task.cancel()
        let result = await task.value
        #expect(result.status.code == .cancelled)
        #expect(ContinuousClock.now - start < .seconds(2))
        for _ in 0..<100 where !handlerCancelled.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
        #expect(handlerCancelled.withLock { $0 }, "RST_STREAM reached the server and cancelled the handler task")
        await pool.shutdown()
        await server.shutdown()
    }

    @Test("GRPCRouter: registered paths dispatch, others are UNIMPLEMENTED")
    func router() async throws {
        var router = GRPCRouter()
        router.register("/dtmgimp.Dtm/NewGid") { _ in .ok(Array("gid".utf8)) }
        router.register("/dtmgimp.Dtm/Submit") { _ in .error(.aborted, "FAILURE") }
        #expect(router.paths == ["/dtmgimp.Dtm/NewGid", "/dtmgimp.Dtm/Submit"])
        let server = try await GRPCServer.start(host: "127.0.0.1", port: 0, logger: Logger(label: "test"), handler: router.handle)
        let pool = GRPCConnectionPool(logger: Logger(label: "test"))
        let authority = "127.0.0.1:\(server.port)"
        #expect(await pool.unary(authority: authority, path: "/dtmgimp.Dtm/NewGid", message: [], timeout: .seconds(5)).message == Array("gid".utf8))
        #expect(await pool.unary(authority: authority, path: "/dtmgimp.Dtm/Submit", message: [], timeout: .seconds(5)).status.code == .aborted)
        #expect(await pool.unary(authority: authority, path: "/dtmgimp.Dtm/Nope", message: [], timeout: .seconds(5)).status.code == .unimplemented)
        await pool.shutdown()
        await server.shutdown()
    }
}
