import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A real HTTP branch service on 127.0.0.1 for end-to-end tests: records every call and answers from a script.
final class BranchService: Sendable {
    struct Call: Sendable, Equatable {
        var method: String
        /// Last path segment, e.g. "TransOut".
        var name: String
        var query: [String: String]
        var body: String
        var headers: [String: String]
    }

    /// How to answer a call: status and body, optionally after a delay.
    struct Answer: Sendable {
        var status: Int = 200
        var body: String = #"{"dtm_result":"SUCCESS"}"#
        var delay: Double = 0
        static let ok = Answer()
        static let failure = Answer(status: 409, body: #"{"error":"reason:insufficient balance. FAILURE"}"#)
        static let ongoing = Answer(status: 425, body: #"{"error":"ONGOING"}"#)
        static let error = Answer(status: 500, body: #"{"error":"ERROR from user"}"#)
    }

    private let state = Mutex<(calls: [Call], script: [String: [Answer]])>(([], [:]))
    private let channel: any Channel
    let port: Int

    var base: String { "http://127.0.0.1:\(port)/api/busi" }

    private init(channel: any Channel) {
        self.channel = channel
        self.port = channel.localAddress!.port!
    }

    static func start() async throws -> BranchService {
        let box = ServiceBox()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(BranchHandler(box: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let service = BranchService(channel: channel)
        box.service.withLock { $0 = service }
        return service
    }

    func stop() async { try? await channel.close() }

    /// Queues answers for calls to `name` (last path segment); afterwards it answers 200 SUCCESS.
    func script(_ name: String, _ answers: Answer...) { state.withLock { $0.script[name, default: []] += answers } }

    var calls: [Call] { state.withLock { $0.calls } }
    func calls(gid: String) -> [Call] { calls.filter { $0.query["gid"] == gid } }
    /// "Name/op" of the calls of `gid`, in order.
    func trail(gid: String) -> [String] { calls(gid: gid).map { "\($0.name)/\($0.query["op"] ?? "")" } }

    fileprivate func record(_ call: Call) -> Answer {
        state.withLock { s in
            s.calls.append(call)
            guard var q = s.script[call.name], !q.isEmpty else { return .ok }
            let a = q.removeFirst()
            s.script[call.name] = q
            return a
        }
    }

    /// Waits until `predicate` holds for the recorded calls (bounded).
    func waitFor(timeout: Double = 15, _ predicate: ([Call]) -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if predicate(calls) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return predicate(calls)
    }
}

private final class ServiceBox: Sendable {
    let service = Mutex<BranchService?>(nil)
}

private final class BranchHandler: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: used only on its channel's event loop.
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private let box: ServiceBox
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    init(box: ServiceBox) { self.box = box }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
        case .body(var b):
            body.writeBuffer(&b)
        case .end:
            guard let head, let service = box.service.withLock({ $0 }) else { return }
            let components = URLComponents(string: head.uri)
            var query: [String: String] = [:]
            for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
            var headers: [String: String] = [:]
            for (name, value) in head.headers { headers[name.lowercased()] = value }
            let name = String((components?.path ?? "").split(separator: "/").last ?? "")
            let call = BranchService.Call(
                method: head.method.rawValue, name: name, query: query, body: String(buffer: body), headers: headers)
            let answer = service.record(call)
            let respond: @Sendable () -> Void = { [context = NIOLoopBound(context, eventLoop: context.eventLoop)] in
                let context = context.value
                var h = HTTPHeaders()
                h.add(name: "Content-Length", value: String(answer.body.utf8.count))
                h.add(name: "Content-Type", value: "application/json")
                context.write(
                    NIOAny(
                        HTTPServerResponsePart.head(HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: answer.status), headers: h))),
                    promise: nil)
                context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: answer.body)))), promise: nil)
                context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
            }
            if answer.delay > 0 {
                context.eventLoop.scheduleTask(in: .milliseconds(Int64(answer.delay * 1000)), respond)
            } else {
                respond()
            }
        }
    }
}
