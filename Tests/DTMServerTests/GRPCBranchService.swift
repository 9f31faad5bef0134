import Logging
import HTTP2
import NIOPosix
import Synchronization

/// A real gRPC branch service (the HTTP2 target's server) for end-to-end tests: records every call with its
/// metadata and raw message, answers from a script per method name.
final class GRPCBranchService: Sendable {
    struct Call: Sendable {
        var method: String
        var metadata: [String: String]
        var message: [UInt8]
        var gid: String { metadata["dtm-gid"] ?? "" }
        var op: String { metadata["dtm-op"] ?? "" }
    }

    private let state = Mutex<(calls: [Call], script: [String: [GRPCStatus]])>(([], [:]))
    private let server = Mutex<GRPCServer?>(nil)

    var port: Int { server.withLock { $0?.port ?? 0 } }
    /// `127.0.0.1:<port>` + `/pkg.Service/Method`.
    func url(_ path: String) -> String { "127.0.0.1:\(port)\(path)" }

    static func start() async throws -> GRPCBranchService {
        let service = GRPCBranchService()
        let server = try await GRPCServer.start(host: "127.0.0.1", port: 0, logger: Logger(label: "test")) { request in
            let call = Call(
                method: request.path, metadata: Dictionary(request.metadata, uniquingKeysWith: { a, _ in a }), message: request.message)
            let status = service.state.withLock { s -> GRPCStatus in
                s.calls.append(call)
                guard var q = s.script[request.path], !q.isEmpty else { return .ok }
                let next = q.removeFirst()
                s.script[request.path] = q
                return next
            }
            return status.code == .ok ? .ok([]) : GRPCResponse(status: status)
        }
        service.server.withLock { $0 = server }
        return service
    }

    func script(_ path: String, _ statuses: GRPCStatus...) { state.withLock { $0.script[path, default: []] += statuses } }
    func calls(gid: String) -> [Call] { state.withLock { $0.calls.filter { $0.gid == gid } } }
    /// "Method/op" for the calls of a gid, e.g. "UserCreate/action".
    func trail(gid: String) -> [String] { calls(gid: gid).map { "\($0.method.split(separator: "/").last ?? "")/\($0.op)" } }

    func stop() async { await server.withLock { $0 }?.shutdown() }
}
