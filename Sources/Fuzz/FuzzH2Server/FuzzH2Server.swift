// libFuzzer target: HTTP/2 server session input (HTTP2/H2ServerSession.swift over nghttp2).
//
// Input: everything a client sends after its connection preface (the harness sends the preface). The
// session is fed the bytes, answers what they complete (unary calls OK or with an error status chosen by
// the request's first byte, half of them only after all input; streaming calls echo), and its output is
// drained; then a graceful shutdown runs and is drained too.
import FuzzSupport
import FoundationEssentials
import HTTP2
import Logging

private let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
private let quiet = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
let streamingPath = "/fuzz.Echo/Stream"

func drain(_ session: H2ServerSession) {
    for _ in 0..<10_000 {
        guard let out = try? session.pendingOutput(limit: 16 * 1024), out.readableBytes > 0 else { return }
    }
    preconditionFailure("pendingOutput did not run dry")
}

func answer(_ session: H2ServerSession, _ request: GRPCRequest) {
    let choice = request.message.first ?? 0
    if choice & 1 == 0 {
        session.respond(streamID: request.streamID, .ok(request.message, metadata: [("x-fuzz", "1")]))
    } else {
        let text = String(decoding: request.message.dropFirst(), as: UTF8.self)
        session.respond(streamID: request.streamID, .error(GRPCStatusCode(rawValue: Int(choice >> 1) % 17), text))
    }
}

func fuzzOne(_ input: UnsafeBufferPointer<UInt8>) {
    var configuration = H2ServerSession.Configuration()
    configuration.streamingPaths = [streamingPath]
    configuration.maxMessageSize = 4096
    configuration.maxConcurrentStreams = 100
    let session = try! H2ServerSession(configuration: configuration, logger: quiet)
    var later: [GRPCRequest] = []
    var count = 0
    session.onRequest = { [unowned session] request in
        count += 1
        if count % 2 == 1 { answer(session, request) } else { later.append(request) }
    }
    session.onStreamMessage = { [unowned session] request in
        session.sendStreamMessage(streamID: request.streamID, request.message)
    }
    session.onStreamHalfClosed = { [unowned session] streamID in
        session.finishStream(streamID: streamID, GRPCStatus(.ok))
    }
    session.onStreamAbandoned = { _ in }
    var bytes = preface
    bytes.append(contentsOf: input)
    do {
        try session.receive(bytes)
    } catch {
        drain(session)  // nghttp2's GOAWAY; the owner then closes the connection
        return
    }
    drain(session)
    for request in later { answer(session, request) }
    drain(session)
    session.beginGracefulShutdown()
    drain(session)
    session.submitFinalGoaway()
    drain(session)
    _ = session.isActive
    _ = session.openStreamCount
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(UnsafeBufferPointer(start: data, count: size))
    return 0
}

#if !FUZZING
/// Without libFuzzer: runs the harness on each file named on the command line.
@main struct Replay {
    static func main() throws { try replayFiles(fuzzOne) }
}
#endif
