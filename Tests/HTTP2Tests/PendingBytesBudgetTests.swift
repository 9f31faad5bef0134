import Logging
import NIOCore
import Testing
@testable import HTTP2

@Suite("Pending-bytes budgets and manual flow control of the server session")
struct PendingBytesBudgetTests {
    @Test("the process budget reserves all or nothing and never passes its limit")
    func processBudget() {
        let budget = PendingBytesBudget(limit: 100)
        #expect(budget.reserve(60))
        #expect(!budget.reserve(41), "41 more would pass the limit: nothing is reserved")
        #expect(budget.reservedBytes == 60)
        #expect(budget.reserve(40))
        #expect(!budget.reserve(1))
        #expect(!budget.reserve(-1))
        budget.release(100)
        #expect(budget.reservedBytes == 0)
        #expect(!budget.reserve(.max), "no overflow on a huge request")
    }

    @Test("a connection's budget applies its own limit and the process's; what it held goes back when it is gone")
    func connectionBudget() {
        let process = PendingBytesBudget(limit: 150)
        var a = ReceiveBudget(connectionLimit: 100, process: process, unadmittedAllowance: 10)
        var b = ReceiveBudget(connectionLimit: 100, process: process, unadmittedAllowance: 10)
        let first = a.reserve(100)
        let overConnection = a.reserve(1)
        let overProcess = b.reserve(51)
        let fits = b.reserve(50)
        #expect(first && fits)
        #expect(!overConnection, "connection limit")
        #expect(!overProcess, "process limit: a holds 100 of 150")
        a.release(1000)  // never more than it holds
        #expect(a.reserved == 0 && process.reservedBytes == 50)
        b.releaseAll()
        #expect(process.reservedBytes == 0)
        let granted = (a.takeUnadmitted(upTo: 8), a.takeUnadmitted(upTo: 8))
        #expect(granted == (8, 2), "the unadmitted allowance is 10")
        a.giveBackUnadmitted(100)
        #expect(a.unadmitted == 0)
    }

    @Test("an open request that does not fit the connection's budget waits at its small window until room is freed")
    func waitsForRoom() throws {
        let pair = try SessionPair(server: Self.serverConfiguration(perConnection: 100_000), handler: nil)
        try pair.pump()  // SETTINGS: until the client has them, it may send 64 KiB on any stream
        let first = try #require(try openWithoutEnd(pair, message: bytes(90_000)))
        #expect(pair.server.reservedRequestBytes == 90_005, "admitted: its whole message is reserved")
        var second: GRPCCallResult?
        let secondID = try #require(pair.client.startStream(path: "/p/M", onMessage: { _, _ in }) { second = $0 })
        pair.client.send(streamID: secondID, message: bytes(90_000, seed: 2))
        pair.client.closeSend(streamID: secondID)
        let moved = try pair.pump()
        #expect(moved < 40_000, "only the small initial window of the second request crossed: \(moved)")
        #expect(pair.server.reservedRequestBytes <= 100_000)
        #expect(pair.requests.isEmpty)

        pair.client.cancel(streamID: first, status: GRPCStatus(.cancelled, "test"))
        try pair.pump()
        let request = try #require(pair.requests.first, "room was freed: the second request was admitted and arrived")
        let intact = request.message == bytes(90_000, seed: 2)
        #expect(intact, "whole and intact")
        pair.server.respond(streamID: request.streamID, .ok([1]))
        try pair.pump()
        #expect(second?.status == .ok)
        #expect(pair.server.reservedRequestBytes == 0)
    }

    @Test("connections share the process budget: one waits while another holds it, and goes on once it is freed")
    func sharedProcessBudget() throws {
        let process = PendingBytesBudget(limit: 100_000)
        let holder = try SessionPair(server: Self.serverConfiguration(perConnection: 100_000, process: process), handler: nil)
        let waiter = try SessionPair(server: Self.serverConfiguration(perConnection: 100_000, process: process))
        try holder.pump()
        try waiter.pump()
        let held = try #require(try openWithoutEnd(holder, message: bytes(90_000)))
        var result: GRPCCallResult?
        waiter.client.startCall(path: "/p/M", message: bytes(90_000)) { result = $0 }
        try waiter.pump()
        #expect(result == nil, "the process budget has no room for it")
        #expect(waiter.server.reservedRequestBytes == 0)
        #expect(process.reservedBytes <= 100_000)

        holder.client.cancel(streamID: held, status: GRPCStatus(.cancelled, "test"))
        try holder.pump()
        #expect(waiter.server.admitStalledStreams(), "the periodic retry admits it")
        try waiter.pump()
        #expect(result?.status == .ok)
        let intact = result?.message == bytes(90_000)
        #expect(intact, "whole and intact")
        #expect(process.reservedBytes == 0)
    }

    @Test("many large open requests on one connection, more than its budget holds at once, all complete")
    func noDeadlock() throws {
        let pair = try SessionPair(server: Self.serverConfiguration(perConnection: 300_000))
        var results: [Int: GRPCCallResult] = [:]
        for i in 0..<20 {
            pair.client.startCall(path: "/p/M", message: bytes(100_000, seed: UInt8(i))) { results[i] = $0 }
        }
        try pair.pump()
        #expect(results.count == 20)
        let intact = (0..<20).filter { results[$0]?.message == bytes(100_000, seed: UInt8($0)) }
        #expect(intact.count == 20)
        #expect(pair.server.reservedRequestBytes == 0)
    }

    @Test("an open method's message limit refuses a larger message from its length prefix")
    func openMessageLimit() throws {
        var configuration = Self.serverConfiguration(perConnection: 100_000)
        configuration.authorize = { _, _ in .open(maxMessageSize: 1024) }
        let pair = try SessionPair(server: configuration)
        let refused = try #require(try pair.call(message: bytes(1025)))
        #expect(refused.status.code == .resourceExhausted)
        #expect(refused.status.message.contains("1025 vs. 1024"))
        #expect(try pair.call(message: bytes(1024))?.status == .ok)
        #expect(pair.requests.count == 1)
    }

    @Test("a refused request's body is never buffered; an authenticated one is not held to the budget")
    func refusedAndAuthenticated() throws {
        let process = PendingBytesBudget(limit: 2048)
        var configuration = Self.serverConfiguration(perConnection: 2048, process: process)
        configuration.authorize = { path, _ in
            path == "/p/Secret" ? .refused(GRPCStatus(.unauthenticated, "no token")) : .authenticated
        }
        let pair = try SessionPair(server: configuration)
        let refused = try #require(try pair.call("/p/Secret", message: bytes(500_000)))
        #expect(refused.status.code == .unauthenticated)
        #expect(process.reservedBytes == 0)
        let allowed = try #require(try pair.call("/p/Allowed", message: bytes(500_000)))
        #expect(allowed.status == .ok, "500 KB on a credential, with a 2 KiB budget")
        #expect(pair.requests.map(\.path) == ["/p/Allowed"])
        #expect(process.reservedBytes == 0)
    }

    @Test("a connection that goes away gives its reservations back to the process")
    func connectionGoneReleases() throws {
        let process = PendingBytesBudget(limit: 100_000)
        do {
            let pair = try SessionPair(server: Self.serverConfiguration(perConnection: 100_000, process: process), handler: nil)
            _ = try #require(try openWithoutEnd(pair, message: bytes(90_000)))
            #expect(process.reservedBytes == 90_005)
        }
        #expect(process.reservedBytes == 0)
    }

    private static func serverConfiguration(
        perConnection: Int, process: PendingBytesBudget = PendingBytesBudget(limit: 1 << 30)
    ) -> H2ServerSession.Configuration {
        var configuration = H2ServerSession.Configuration()
        configuration.maxPendingBytesPerConnection = perConnection
        configuration.pendingBytes = process
        return configuration
    }

    /// Sends a whole unary request message but not END_STREAM, so the server holds it; returns the stream id.
    private func openWithoutEnd(_ pair: SessionPair, message: [UInt8]) throws -> Int32? {
        let id = pair.client.startStream(path: "/p/M", onMessage: { _, _ in }) { _ in }
        guard let id else { return nil }
        pair.client.send(streamID: id, message: message)
        try pair.pump()
        return id
    }
}
