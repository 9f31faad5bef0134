import HTTP2
import Logging

/// FuzzH2Server: HTTP/2 server session input (H2ServerSession over nghttp2).
///
/// Input: everything a client sends after its connection preface (the harness sends the preface). The
/// session is fed the bytes, answers what they complete (unary calls OK or with an error status chosen by
/// the request's first byte, half of them only after all input; streaming calls echo), and its output is
/// drained; then a graceful shutdown runs and is drained too.
package enum H2ServerHarness {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// Every broken invariant (empty when all hold).
    package static func run(_ input: [UInt8]) -> [String] {
        var configuration = H2ServerSession.Configuration()
        configuration.streamingPaths = ["/fuzz.Echo/Stream"]
        configuration.maxMessageSize = 4096
        configuration.maxConcurrentStreams = 100
        guard let session = try? H2ServerSession(configuration: configuration, logger: Fixtures.quiet) else {
            return ["the session could not be created"]
        }
        var problems: [String] = []
        func answer(_ request: GRPCRequest) {
            let choice = request.message.first ?? 0
            if choice & 1 == 0 {
                session.respond(streamID: request.streamID, .ok(request.message, metadata: [("x-fuzz", "1")]))
            } else {
                let text = String(decoding: request.message.dropFirst(), as: UTF8.self)
                session.respond(streamID: request.streamID, .error(GRPCStatusCode(rawValue: Int(choice >> 1) % 17), text))
            }
        }
        func drain() {
            for _ in 0..<10_000 {
                guard let out = try? session.pendingOutput(limit: 16 * 1024), out.readableBytes > 0 else { return }
            }
            problems.append("pendingOutput did not run dry")
        }
        var later: [GRPCRequest] = []
        var count = 0
        session.onRequest = { request in
            count += 1
            if count % 2 == 1 { answer(request) } else { later.append(request) }
        }
        session.onStreamMessage = { [unowned session] request in session.sendStreamMessage(streamID: request.streamID, request.message) }
        session.onStreamHalfClosed = { [unowned session] streamID in session.finishStream(streamID: streamID, GRPCStatus(.ok)) }
        session.onStreamAbandoned = { _ in }
        defer { session.onRequest = nil }  // the closure holds the session
        do {
            try session.receive(preface + input)
        } catch {
            drain()  // nghttp2's GOAWAY; the owner then closes the connection
            return problems
        }
        drain()
        for request in later { answer(request) }
        drain()
        session.beginGracefulShutdown()
        drain()
        session.submitFinalGoaway()
        drain()
        _ = session.isActive
        _ = session.openStreamCount
        return problems
    }
}
