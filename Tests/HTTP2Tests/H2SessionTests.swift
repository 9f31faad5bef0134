import Logging
import NIOCore
import Testing
@testable import HTTP2

@Suite("HTTP/2 gRPC sessions in memory")
struct H2SessionTests {
    @Test("unary round trip: path, metadata, timeout reach the server; response reaches the client")
    func unaryRoundTrip() throws {
        let pair = try SessionPair { request in .ok(request.message.reversed(), metadata: [("x-answer", "42")]) }
        let result = try #require(
            try pair.call(
                "/busi.Busi/TransIn", metadata: [("dtm-gid", "g1"), ("DTM-Op", "action")], message: [1, 2, 3],
                timeout: .milliseconds(1500)))
        #expect(result.status == .ok)
        #expect(result.message == [3, 2, 1])
        #expect(result.metadata.contains { $0 == ("x-answer", "42") })
        let request = try #require(pair.requests.first)
        #expect(request.path == "/busi.Busi/TransIn")
        #expect(request.metadata("dtm-gid") == "g1")
        #expect(request.metadata("dtm-op") == "action", "metadata keys travel lower-cased")
        #expect(request.metadata("content-type") == "application/grpc")
        #expect(request.metadata("te") == "trailers")
        #expect(request.timeout == .microseconds(1_500_000))
        #expect(request.deadline != nil)
        #expect(pair.server.openStreamCount == 0)
        #expect(pair.client.activeCallCount == 0)
    }

    @Test("many calls multiplexed on one connection, answered out of order")
    func multiplexed() throws {
        let pair = try SessionPair(handler: nil)
        var results: [Int: GRPCCallResult] = [:]
        for i in 0..<50 {
            pair.client.startCall(path: "/p/M", message: [UInt8(i)]) { results[i] = $0 }
        }
        try pair.pump()
        #expect(pair.requests.count == 50)
        for request in pair.requests.reversed() {
            pair.server.respond(streamID: request.streamID, .ok(request.message + [0xFF]))
        }
        try pair.pump()
        #expect(results.count == 50)
        for i in 0..<50 { #expect(results[i]?.message == [UInt8(i), 0xFF]) }
    }

    @Test("error status is sent trailers-only with a percent-encoded message that round-trips")
    func trailersOnlyError() throws {
        let text = "current status 'succeed', cannot sumbmit. FAILURE — 100% ✓\nline 2"
        let pair = try SessionPair { _ in .error(.aborted, text) }
        let result = try #require(try pair.call(message: [9]))
        #expect(result.status.code == .aborted)
        #expect(result.status.message == text)
        #expect(result.message.isEmpty)
    }

    @Test("unknown method: the owner answers with the UNIMPLEMENTED helper")
    func unknownMethod() throws {
        let pair = try SessionPair { .unimplemented(path: $0.path) }
        let result = try #require(try pair.call("/nope.Svc/Missing", message: []))
        #expect(result.status.code == .unimplemented)
        #expect(result.status.message.contains("/nope.Svc/Missing"))
    }

    @Test("oversized request message is answered RESOURCE_EXHAUSTED without reaching the handler")
    func oversized() throws {
        var config = H2ServerSession.Configuration()
        config.maxMessageSize = 1000
        let pair = try SessionPair(server: config)
        let result = try #require(try pair.call(message: bytes(1001)))
        #expect(result.status.code == .resourceExhausted)
        #expect(pair.requests.isEmpty)
        let ok = try #require(try pair.call(message: bytes(1000)))
        #expect(ok.status == .ok, "the connection stays usable, the limit is inclusive")
        #expect(pair.server.openStreamCount == 0)
    }

    @Test("compressed-flag request message is answered UNIMPLEMENTED")
    func compressed() throws {
        let pair = try SessionPair()
        var result: GRPCCallResult?
        let headers = pair.client.requestHeaders(path: "/p/M", metadata: [("grpc-encoding", "gzip")], timeout: nil)
        _ = pair.client.startRawCall(headers: headers, body: [1, 0, 0, 0, 2, 0x1F, 0x8B]) { result = $0 }
        try pair.pump()
        #expect(result?.status.code == .unimplemented)
        #expect(pair.requests.isEmpty)
    }

    @Test("non-gRPC content-type is answered HTTP 415 with grpc-status INTERNAL, like grpc-go")
    func badContentType() throws {
        let pair = try SessionPair()
        var result: GRPCCallResult?
        var headers = pair.client.requestHeaders(path: "/p/M", metadata: [], timeout: nil)
        headers = headers.map { String(decoding: $0.name.array, as: UTF8.self) == "content-type" ? H2Header("content-type", "application/json") : $0 }
        _ = pair.client.startRawCall(headers: headers, body: GRPCFraming.frame(bytes(100_000))) { result = $0 }
        try pair.pump()
        #expect(result?.status.code == .internal)
        #expect(result?.status.message.contains("content-type") == true)
        #expect(pair.requests.isEmpty)
        #expect(pair.server.openStreamCount == 0, "the half-received stream was reset, not leaked")
        // application/grpc+proto is a gRPC content type.
        var plus: GRPCCallResult?
        headers = headers.map { String(decoding: $0.name.array, as: UTF8.self) == "content-type" ? H2Header("content-type", "application/grpc+proto") : $0 }
        _ = pair.client.startRawCall(headers: headers, body: GRPCFraming.frame([5])) { plus = $0 }
        try pair.pump()
        #expect(plus?.status == .ok)
    }

    @Test("non-POST method is answered HTTP 405 with grpc-status INTERNAL")
    func nonPost() throws {
        let pair = try SessionPair()
        var result: GRPCCallResult?
        let headers = pair.client.requestHeaders(path: "/p/M", metadata: [], timeout: nil).map {
            $0.name.array == H2Names.method ? H2Header(name: H2Names.method, value: Array("PUT".utf8)) : $0
        }
        _ = pair.client.startRawCall(headers: headers, body: GRPCFraming.frame([1])) { result = $0 }
        try pair.pump()
        #expect(result?.status.code == .internal)
        #expect(result?.status.message.contains("POST") == true)
        #expect(pair.requests.isEmpty)
    }

    @Test("grpc-timeout: the largest legal value saturates the deadline; garbage means no deadline")
    func extremeTimeouts() throws {
        let pair = try SessionPair()
        for (value, expectDeadline) in [("99999999H", true), ("soon", false)] {
            var headers = pair.client.requestHeaders(path: "/p/M", metadata: [], timeout: nil)
            headers.append(H2Header("grpc-timeout", value))
            var result: GRPCCallResult?
            _ = pair.client.startRawCall(headers: headers, body: GRPCFraming.frame([1])) { result = $0 }
            try pair.pump()
            #expect(result?.status == .ok)
            #expect((pair.requests.last?.deadline != nil) == expectDeadline, "\(value)")
        }
        #expect(pair.requests.first?.timeout == .seconds(99_999_999 * 3600))
    }

    @Test("request stream ending without a message is answered INTERNAL")
    func missingMessage() throws {
        let pair = try SessionPair()
        var result: GRPCCallResult?
        let headers = pair.client.requestHeaders(path: "/p/M", metadata: [], timeout: nil)
        _ = pair.client.startRawCall(headers: headers, body: [0, 0, 0]) { result = $0 }
        try pair.pump()
        #expect(result?.status.code == .internal)
    }

    @Test("3 MiB message both directions crosses flow-control windows")
    func largeMessages() throws {
        let payload = bytes(3 * 1024 * 1024, seed: 3)
        let pair = try SessionPair { .ok($0.message.reversed()) }
        let result = try #require(try pair.call(message: payload))
        #expect(result.status == .ok)
        #expect(result.message.count == payload.count)
        #expect(result.message == payload.reversed())
        #expect(pair.requests.first?.message == payload)
        // Same with the nghttp2 default 64 KiB windows: only WINDOW_UPDATEs make it progress.
        var server = H2ServerSession.Configuration()
        server.initialWindowSize = 65_535
        server.connectionWindowSize = 65_535
        var client = H2ClientSession.Configuration()
        client.initialWindowSize = 65_535
        client.connectionWindowSize = 65_535
        let small = try SessionPair(server: server, client: client) { .ok($0.message) }
        #expect(try small.call(message: payload)?.message == payload)
    }

    @Test("oversized response is refused by the client with RESOURCE_EXHAUSTED")
    func oversizedResponse() throws {
        var client = H2ClientSession.Configuration()
        client.maxMessageSize = 10
        let pair = try SessionPair(client: client) { _ in .ok(bytes(11)) }
        #expect(try pair.call(message: [])?.status.code == .resourceExhausted)
    }

    @Test("graceful shutdown: GOAWAY notice, PING, final GOAWAY; in-flight call completes, new calls refused")
    func gracefulShutdown() throws {
        let pair = try SessionPair(handler: nil)
        var first: GRPCCallResult?
        pair.client.startCall(path: "/p/M", message: [1]) { first = $0 }
        try pair.pump()
        let inFlight = try #require(pair.requests.first)
        pair.server.beginGracefulShutdown()
        try pair.pump()
        #expect(pair.client.goawayLastStreamID == inFlight.streamID, "final GOAWAY names the last processed stream")
        #expect(!pair.client.canStartCalls)
        var late: GRPCCallResult?
        pair.client.startCall(path: "/p/M", message: [2]) { late = $0 }
        #expect(late?.status.code == .unavailable)
        #expect(late?.isTransparentlyRetryable == true)
        #expect(pair.server.isActive, "one stream still open")
        pair.server.respond(streamID: inFlight.streamID, .ok([7]))
        try pair.pump()
        #expect(first?.message == [7])
        #expect(!pair.server.isActive, "nothing left: the owner may close the connection")
    }

    @Test("GOAWAY fails calls above last-stream-id as transparently retryable")
    func goawayRefusesLaterStreams() throws {
        let pair = try SessionPair(handler: nil)
        var first: GRPCCallResult?
        pair.client.startCall(path: "/p/M", message: [1]) { first = $0 }
        try pair.pump()
        // The second call's HEADERS reach the client's output, but the server's final GOAWAY
        // (last stream = first call) is delivered before the server processes them.
        var second: GRPCCallResult?
        pair.client.startCall(path: "/p/M", message: [2]) { second = $0 }
        let clientBytes = try #require(try pair.client.pendingOutput())
        pair.server.submitFinalGoaway()
        let goaway = try #require(try pair.server.pendingOutput())
        try pair.client.receive(goaway)
        #expect(second?.status.code == .unavailable)
        #expect(second?.isTransparentlyRetryable == true)
        try pair.server.receive(clientBytes)
        let request = try #require(pair.requests.first)
        pair.server.respond(streamID: request.streamID, .ok([1]))
        try pair.pump()
        #expect(first?.status == .ok)
        #expect(pair.requests.count == 1, "the refused stream was never handed to the application")
    }

    @Test("connection close fails every call in flight with UNAVAILABLE")
    func connectionClose() throws {
        let pair = try SessionPair(handler: nil)
        var results: [GRPCCallResult] = []
        for i in 0..<3 { pair.client.startCall(path: "/p/M", message: [UInt8(i)]) { results.append($0) } }
        try pair.pump()
        pair.client.connectionClosed("test")
        #expect(results.count == 3)
        #expect(results.allSatisfy { $0.status.code == .unavailable && !$0.isTransparentlyRetryable })
        #expect(!pair.client.canStartCalls)
    }

    @Test("client cancel resets the stream; server reports the stream abandoned")
    func cancel() throws {
        let pair = try SessionPair(handler: nil)
        var abandoned: [Int32] = []
        pair.server.onStreamAbandoned = { abandoned.append($0) }
        var result: GRPCCallResult?
        let id = try #require(pair.client.startCall(path: "/p/M", message: [1]) { result = $0 })
        try pair.pump()
        pair.client.cancel(streamID: id, status: GRPCStatus(.deadlineExceeded, "deadline"))
        try pair.pump()
        #expect(result?.status.code == .deadlineExceeded)
        #expect(abandoned == [id])
        pair.server.respond(streamID: id, .ok([1]))  // late answer: dropped
        try pair.pump()
    }

    @Test("header list over SETTINGS_MAX_HEADER_LIST_SIZE resets the stream")
    func headerListLimit() throws {
        var config = H2ServerSession.Configuration()
        config.maxHeaderListSize = 1024
        let pair = try SessionPair(server: config)
        let result = try #require(try pair.call(metadata: [("x-big", String(repeating: "a", count: 2000))], message: [1]))
        #expect(result.status.code != .ok)
        #expect(pair.requests.isEmpty)
        #expect(try pair.call(message: [1])?.status == .ok)
    }

    @Test("SETTINGS_MAX_CONCURRENT_STREAMS: calls beyond the limit wait for a free stream, none fail")
    func concurrentStreamLimit() throws {
        var config = H2ServerSession.Configuration()
        config.maxConcurrentStreams = 2
        let pair = try SessionPair(server: config, handler: nil)
        try pair.pump()  // SETTINGS exchange first, so the client knows the limit
        var results: [Int: GRPCCallResult] = [:]
        for i in 0..<5 { pair.client.startCall(path: "/p/M", message: [UInt8(i)]) { results[i] = $0 } }
        try pair.pump()
        #expect(pair.requests.count == 2)
        var answered = 0
        while answered < pair.requests.count {
            let request = pair.requests[answered]
            pair.server.respond(streamID: request.streamID, .ok(request.message))
            answered += 1
            try pair.pump()
            #expect(pair.server.openStreamCount <= 2)
        }
        #expect(results.count == 5)
        #expect((0..<5).allSatisfy { results[$0]?.message == [UInt8($0)] })
    }

    @Test("garbage instead of the connection preface: receive throws (the owner closes)")
    func badPreface() throws {
        let server = try H2ServerSession(logger: Logger(label: "test"))
        #expect(throws: H2SessionError.self) {
            try server.receive(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        }
    }

    @Test("connection-level protocol error (DATA on stream 0): GOAWAY queued, session inactive")
    func protocolErrorGoaway() throws {
        let server = try H2ServerSession(logger: Logger(label: "test"))
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        let emptySettings: [UInt8] = [0, 0, 0, 4, 0, 0, 0, 0, 0]
        let dataOnStream0: [UInt8] = [0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41]
        do { try server.receive(preface + emptySettings + dataOnStream0) } catch {}  // either way the GOAWAY is queued
        let out = try #require(try server.pendingOutput())
        // Walk the frames: the frame type is byte 3 of each 9-byte header.
        var bytes = Array(out.readableBytesView)
        var types: [UInt8] = []
        while bytes.count >= 9 {
            let length = Int(bytes[0]) << 16 | Int(bytes[1]) << 8 | Int(bytes[2])
            types.append(bytes[3])
            bytes.removeFirst(9 + length)
        }
        #expect(types.last == 7, "frame types sent: \(types)")
        #expect(!server.isActive)
    }

    @Test("PING from the peer is acknowledged by the server session")
    func pingAck() throws {
        let server = try H2ServerSession(logger: Logger(label: "test"))
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        let emptySettings: [UInt8] = [0, 0, 0, 4, 0, 0, 0, 0, 0]
        let ping: [UInt8] = [0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
        try server.receive(preface + emptySettings + ping)
        let out = Array(try #require(try server.pendingOutput()).readableBytesView)
        let ack: [UInt8] = [0, 0, 8, 6, 1, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
        #expect(out.indices.contains { out[$0...].starts(with: ack) })
    }
}
