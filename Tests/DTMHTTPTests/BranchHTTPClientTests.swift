import AsyncHTTPClient
import DTMCore
import EventLoopSupport
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

@testable import DTMHTTP

/// The lean HTTP/1.1 branch client (Sources/DTMHTTP/BranchCaller/HTTP1Client) against a loopback NIO server.
@Suite("lean branch HTTP client")
struct BranchHTTPClientTests {
    static func makePool(_ configure: (inout HTTP1PoolConfiguration) -> Void = { _ in }) -> HTTP1ConnectionPool {
        var config = HTTP1PoolConfiguration()
        configure(&config)
        return HTTP1ConnectionPool(group: MultiThreadedEventLoopGroup.singleton, configuration: config, logger: Logger(label: "test"))
    }

    static func get(
        _ pool: HTTP1ConnectionPool, _ server: BranchHTTPTestServer, _ path: String, timeout: TimeAmount = .seconds(20)
    ) async throws
        -> HTTP1Response
    {
        let target = try #require(HTTP1Target("http://127.0.0.1:\(server.port)\(path)"))
        let head = try #require(target.requestHead(method: .GET, headers: [:], bodyLength: 0))
        return try await pool.execute(HTTP1Request(head: head, body: nil), to: target.endpoint, deadline: .now() + timeout)
    }

    /// Polls `condition` for up to 20 s (the whole suite runs in parallel on two cores, store and etcd servers
    /// included: no test depends on a tight timing).
    static func eventually(_ condition: () -> Bool) async -> Bool {
        let end = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < end {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    static func endpoint(_ server: BranchHTTPTestServer) -> HTTP1Endpoint { HTTP1Endpoint(host: "127.0.0.1", port: server.port) }

    @Test("sequential calls reuse one keep-alive connection")
    func keepAlive() async throws {
        let server = try await BranchHTTPTestServer.start()
        let pool = Self.makePool()
        for _ in 0..<5 {
            let r = try await Self.get(pool, server, "/ok")
            #expect(r.status == 200 && r.body == Array("ok".utf8) && r.reusable)
        }
        #expect(server.accepted == 1)
        #expect(pool.openConnections(to: Self.endpoint(server)) == 1)
        pool.shutdown()
        await server.stop()
    }

    /// Alternating sequential calls from two loops: without loop affinity the most recently used idle connection
    /// would serve both (one connection); with it, each loop keeps its own and the answer resumes the call there.
    @Test("a call made on an event loop takes a connection of that loop and resumes on it")
    func loopAffinity() async throws {
        let server = try await BranchHTTPTestServer.start()
        let pool = Self.makePool()
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let executors = [EventLoopTaskExecutor(eventLoop: loops.next()), EventLoopTaskExecutor(eventLoop: loops.next())]
        for _ in 0..<3 {
            for executor in executors {
                let resumedOnLoop = try await Task(executorPreference: executor) {
                    let r = try await Self.get(pool, server, "/ok")
                    return r.status == 200 && executor.eventLoop.inEventLoop
                }.value
                #expect(resumedOnLoop)
            }
        }
        #expect(server.accepted == 2)
        #expect(pool.openConnections(to: Self.endpoint(server)) == 2)
        pool.shutdown()
        await server.stop()
        try await loops.shutdownGracefully()
    }

    /// `/hold` answers only once 4 requests are in flight together, so the pool must open exactly the cap.
    @Test("concurrent calls open at most the cap; the rest wait their turn (FIFO) and all succeed")
    func cap() async throws {
        let server = try await BranchHTTPTestServer.start()
        let pool = Self.makePool { $0.maxConnectionsPerHost = 4 }
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<12 { group.addTask { try await Self.get(pool, server, "/hold").status } }
            for try await status in group { #expect(status == 200) }
        }
        #expect(server.accepted == 4)
        #expect(server.stats.withLock { $0.maxInFlight } == 4)
        #expect(pool.openConnections(to: Self.endpoint(server)) == 4)
        pool.shutdown()
        await server.stop()
    }

    @Test("the deadline fails a slow call and closes its connection; a waiter queued past its deadline fails too")
    func deadline() async throws {
        let server = try await BranchHTTPTestServer.start()
        let pool = Self.makePool { $0.maxConnectionsPerHost = 1 }
        // The slow call's deadline is long enough that the waiter below surely queues behind it even on a
        // loaded machine (with a short one the connection could be gone, and the waiter would connect anew).
        let slow = Task { try await Self.get(pool, server, "/slow", timeout: .seconds(2)) }
        #expect(await Self.eventually { server.stats.withLock { $0.heads.count } == 1 })
        // The one connection is busy: this call waits in the queue and fails there at its deadline.
        await #expect(throws: HTTP1ClientError.deadlineExceeded) { try await Self.get(pool, server, "/ok", timeout: .milliseconds(200)) }
        // /slow answers after 10 s: the call fails at its deadline, well before.
        await #expect(throws: HTTP1ClientError.deadlineExceeded) { try await slow.value }
        #expect(await Self.eventually { server.open == 0 }, "the timed-out connection is closed")
        #expect(try await Self.get(pool, server, "/ok").status == 200)
        #expect(server.accepted == 2)
        pool.shutdown()
        await server.stop()
    }

    @Test("a connection the server closed while idle is dropped; the next call succeeds on a new one")
    func serverClosesIdle() async throws {
        let server = try await BranchHTTPTestServer.start()
        let pool = Self.makePool()
        #expect(try await Self.get(pool, server, "/ok").status == 200)
        await server.closeConnections()
        #expect(await Self.eventually { pool.openConnections(to: Self.endpoint(server)) == 0 })
        #expect(try await Self.get(pool, server, "/ok").status == 200)
        #expect(server.accepted == 2)
        pool.shutdown()
        await server.stop()
    }

    @Test("EOF before any answer on a reused connection is retried once on a new connection; not on a fresh one")
    func keepAliveRace() async throws {
        let server = try await BranchHTTPTestServer.start()
        let pool = Self.makePool()
        #expect(try await Self.get(pool, server, "/drop-second").status == 200)
        // The second request on that connection is dropped; the retry is the first on a new connection.
        #expect(try await Self.get(pool, server, "/drop-second").status == 200)
        #expect(server.accepted == 2)
        #expect(server.stats.withLock { $0.heads.count } == 3)
        // /drop never answers: on the reused connection it is retried once, and the retry (on a fresh
        // connection) is not retried again.
        await #expect(throws: HTTP1ClientError.self) { try await Self.get(pool, server, "/drop") }
        #expect(server.accepted == 3)
        #expect(server.stats.withLock { $0.heads.count } == 5)
        #expect(pool.openConnections(to: Self.endpoint(server)) == 0)
        pool.shutdown()
        await server.stop()
    }

    @Test("a response with Connection: close is not reused")
    func connectionClose() async throws {
        let server = try await BranchHTTPTestServer.start()
        let pool = Self.makePool()
        let r = try await Self.get(pool, server, "/close")
        #expect(r.status == 200 && !r.reusable)
        #expect(try await Self.get(pool, server, "/ok").status == 200)
        #expect(server.accepted == 2)
        pool.shutdown()
        await server.stop()
    }

    @Test("connection refused is an error and frees the slot")
    func refused() async throws {
        let server = try await BranchHTTPTestServer.start()
        let port = server.port
        await server.stop()
        let pool = Self.makePool { $0.maxConnectionsPerHost = 1 }
        let target = try #require(HTTP1Target("http://127.0.0.1:\(port)/ok"))
        let head = try #require(target.requestHead(method: .GET, headers: [:], bodyLength: 0))
        for _ in 0..<2 {
            await #expect(throws: (any Error).self) {
                try await pool.execute(HTTP1Request(head: head, body: nil), to: target.endpoint, deadline: .now() + .seconds(2))
            }
        }
        #expect(pool.openConnections(to: target.endpoint) == 0)
        pool.shutdown()
    }

    @Test("a chunked answer is read whole and the connection reused")
    func chunked() async throws {
        let server = try await BranchHTTPTestServer.start()
        let pool = Self.makePool()
        let r = try await Self.get(pool, server, "/chunked")
        #expect(r.status == 200 && String(decoding: r.body, as: UTF8.self) == "hello chunked world" && r.reusable)
        #expect(try await Self.get(pool, server, "/ok").status == 200)
        #expect(server.accepted == 1)
        pool.shutdown()
        await server.stop()
    }

    @Test("a 1 MiB answer keeps 64 KiB, is read to its end, and the connection stays usable")
    func big() async throws {
        let server = try await BranchHTTPTestServer.start()
        let pool = Self.makePool()
        let r = try await Self.get(pool, server, "/big")
        #expect(r.status == 200 && r.body.count == 64 * 1024 && r.reusable)
        #expect(try await Self.get(pool, server, "/ok").body == Array("ok".utf8))
        #expect(server.accepted == 1)
        pool.shutdown()
        await server.stop()
    }

    @Test("idle connections are closed after the idle timeout")
    func idleTimeout() async throws {
        let server = try await BranchHTTPTestServer.start()
        let pool = Self.makePool { $0.idleTimeout = .milliseconds(200) }
        #expect(try await Self.get(pool, server, "/ok").status == 200)
        #expect(await Self.eventually { pool.openConnections(to: Self.endpoint(server)) == 0 && server.open == 0 })
        pool.shutdown()
        await server.stop()
    }

    @Test("URLs the lean client takes verbatim, and those it leaves to AsyncHTTPClient")
    func targets() throws {
        let t = try #require(HTTP1Target("http://127.0.0.1:8081/api/busi/TransIn?a=1&b=%2F"))
        #expect(t.endpoint == HTTP1Endpoint(host: "127.0.0.1", port: 8081))
        #expect(t.uri == "/api/busi/TransIn?a=1&b=%2F" && t.hostHeader == "127.0.0.1:8081")
        #expect(HTTP1Target("http://busi.example/x")?.hostHeader == "busi.example")
        #expect(HTTP1Target("http://busi.example:80?x=1")?.uri == "/?x=1")
        for url in [
            "https://h/x", "http://", "http://H/x", "http://u:p@h/x", "http://[::1]:80/x", "http://h:0/x", "http://h:99999/x",
            "http://h/a b", "http://h/x#f", "http://h/%zz", "http://h/ü", "grpc-host:1/x",
        ] {
            #expect(HTTP1Target(url) == nil, "\(url)")
        }
    }

    /// Branch calls through HTTPBranchCaller with and without the lean pool: the server sees the same requests.
    @Test("HTTPBranchCaller sends the same requests through the lean client as through AsyncHTTPClient")
    func sameRequestShape() async throws {
        let server = try await BranchHTTPTestServer.start()
        let base = "http://127.0.0.1:\(server.port)"
        let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
        let pool = Self.makePool()
        // Timeouts far beyond what a call takes: under the whole suite on two cores a 3 s deadline was missed once.
        let calls = [
            BranchCall(
                url: "\(base)/busi/TransOut", gid: "g 1/ü", transType: .saga, transProtocol: "http", branchID: "01", op: "action",
                payload: Array(#"{"amount":30}"#.utf8), headers: ["X-Test": "v", "content-type": "text/plain"], timeout: 20),
            BranchCall(
                url: "\(base)/busi/query?x=1&y=%20", gid: "g2", transType: .msg, transProtocol: "http", branchID: "00", op: "msg",
                payload: [], headers: [:], timeout: 20),
            BranchCall(
                url: "\(base)/busi/xa", gid: "g3", transType: .xa, transProtocol: "http", branchID: "01", op: "commit",
                payload: [], headers: ["Host": "other.example"], timeout: 20),
            BranchCall(
                url: "\(base)/rpc?method=TransIn", gid: "g4", transType: .saga, transProtocol: TransProtocol.jsonRPC, branchID: "01",
                op: "action", payload: Array(#"{"a":1}"#.utf8), headers: [:], timeout: 20),
        ]
        for call in calls {
            let viaAHC = await HTTPBranchCaller(client: client).call(call)
            let viaLean = await HTTPBranchCaller(client: client, plainHTTP: pool).call(call)
            #expect(viaAHC == viaLean)
        }
        let (heads, bodies) = server.stats.withLock { ($0.heads, $0.bodies) }
        #expect(heads.count == calls.count * 2)
        for i in stride(from: 0, to: heads.count - 1, by: 2) {
            let (a, b) = (heads[i], heads[i + 1])
            #expect(a.method == b.method && a.uri == b.uri && a.version == b.version)
            // JSON-RPC ids are fresh per call; everything else is byte for byte.
            if !a.uri.hasPrefix("/rpc") { #expect(bodies[i] == bodies[i + 1]) }
            #expect(Array(a.headers.map { "\($0.name): \($0.value)" }) == Array(b.headers.map { "\($0.name): \($0.value)" }))
        }
        #expect(server.accepted == 2, "one connection each, kept alive")
        pool.shutdown()
        try await client.shutdown()
        await server.stop()
    }
}
