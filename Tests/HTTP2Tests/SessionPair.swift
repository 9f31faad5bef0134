import Logging
import NIOCore
@testable import HTTP2

/// A client session wired to a server session in memory: `pump()` moves bytes both ways until
/// neither side has anything to send. The server answers requests with `handler` (nil: the test
/// answers by hand through `server.respond`).
final class SessionPair {
    let client: H2ClientSession
    let server: H2ServerSession
    var requests: [GRPCRequest] = []
    var handler: ((GRPCRequest) -> GRPCResponse?)?

    init(
        server serverConfig: H2ServerSession.Configuration = .init(),
        client clientConfig: H2ClientSession.Configuration = .init(),
        handler: ((GRPCRequest) -> GRPCResponse?)? = { .ok($0.message) }
    ) throws {
        client = try H2ClientSession(authority: "127.0.0.1:1", configuration: clientConfig, logger: Logger(label: "test"))
        server = try H2ServerSession(configuration: serverConfig, logger: Logger(label: "test"))
        self.handler = handler
        server.onRequest = { [unowned self] request in
            requests.append(request)
            if let response = self.handler?(request) { server.respond(streamID: request.streamID, response) }
        }
    }

    /// Moves bytes until quiet; returns how many bytes crossed in total.
    @discardableResult
    func pump(maxRounds: Int = 10_000) throws -> Int {
        var total = 0
        for _ in 0..<maxRounds {
            var moved = 0
            if let out = try client.pendingOutput() {
                moved += out.readableBytes
                try server.receive(out)
            }
            if let out = try server.pendingOutput() {
                moved += out.readableBytes
                try client.receive(out)
            }
            total += moved
            if moved == 0 { return total }
        }
        return total
    }

    /// Starts one call, pumps, and returns its result.
    func call(
        _ path: String = "/busi.Busi/TransOut", metadata: [(String, String)] = [], message: [UInt8],
        timeout: Duration? = nil
    ) throws -> GRPCCallResult? {
        var result: GRPCCallResult?
        client.startCall(path: path, metadata: metadata, message: message, timeout: timeout) { result = $0 }
        try pump()
        return result
    }
}

/// Deterministic test payload.
func bytes(_ count: Int, seed: UInt8 = 7) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}
