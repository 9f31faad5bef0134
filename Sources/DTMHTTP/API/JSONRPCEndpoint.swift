import DTMCore
import FoundationEssentials

/// DTM's JSON-RPC 2.0 API on `POST /api/json-rpc` (spec §5): newGid, prepare, submit, abort, registerBranch.
/// Answers are always HTTP 200 with a JSON-RPC envelope, except a body that is not JSON (400).
struct JSONRPCEndpoint {
    let coordinator: Coordinator
    /// The HTTP call's span while tracing: it gets the RPC attributes, and its context goes with the request.
    let span: (any TraceSpan)?

    private struct Envelope: Decodable {
        var jsonrpc: String?
        var id: String?
        var method: String?
    }
    private struct TransactionParams: Decodable { var params: TransactionRequestJSON? }
    private struct BranchParams: Decodable { var params: [String: String]? }

    func handle(_ body: [UInt8]) async -> APIResponse {
        let envelope: Envelope
        do {
            envelope = try JSONDecoder().decode(Envelope.self, from: Data(body))
        } catch {
            var r = reply(id: nil, error: (-32700, "Parse json error: \(describe(error))"), result: nil)
            r.status = 400
            return r
        }
        guard let id = envelope.id, !id.isEmpty, envelope.jsonrpc == "2.0" else {
            return reply(id: envelope.id, error: (-32600, "Bad json request: \(String(decoding: body.prefix(1024), as: UTF8.self))"), result: nil)
        }
        let method = envelope.method ?? ""
        if let span {
            span.set("rpc.system", .string("jsonrpc"))
            // Only the methods there are: a client must not choose attribute values without bound.
            if ["newGid", "prepare", "submit", "abort", "registerBranch"].contains(method) { span.set("rpc.method", .string(method)) }
        }
        do {
            switch method {
            case "newGid":
                let gid = coordinator.newGid()
                return reply(id: id, error: nil) {
                    $0.beginObject(); $0.field("gid", gid); $0.endObject()
                }
            case "prepare", "submit", "abort":
                var request = try decodeTransaction(body)
                request.trace = span?.headers
                span?.set("dtm.gid", .string(Limits.shown(gid: request.gid)))
                switch method {
                case "prepare": try await coordinator.prepare(request)
                case "submit": try await coordinator.submit(request)
                default: try await coordinator.abort(request)
                }
            case "registerBranch":
                let map: [String: String]
                do {
                    map = try JSONDecoder().decode(BranchParams.self, from: Data(body)).params ?? [:]
                } catch {
                    throw DTMError.invalidArgument("params must be an object whose values are all strings: \(describe(error))")
                }
                span?.set("dtm.gid", .string(Limits.shown(gid: map["gid"] ?? "")))
                try await coordinator.registerBranch(
                    BranchRegistration(
                        gid: map["gid"] ?? "", transType: map["trans_type"] ?? "", branchID: map["branch_id"] ?? "",
                        data: map, busiPayload: Array((map["data"] ?? "").utf8)))
            default:
                return reply(id: id, error: (-32601, "Method not found: \(method.prefix(64))"), result: nil)
            }
            return reply(id: id, error: nil, result: nil)
        } catch {
            let e = (error as? DTMError) ?? .other("\(error)")
            let code: Int64
            switch e {
            case .failure: code = -32901
            case .ongoing: code = -32902
            case .invalidArgument: code = -32602
            default: code = -32603
            }
            return reply(id: id, error: (code, e.description)) {
                $0.beginObject(); $0.endObject()
            }
        }
    }

    private func decodeTransaction(_ body: [UInt8]) throws -> TransactionRequest {
        do {
            guard let params = try JSONDecoder().decode(TransactionParams.self, from: Data(body)).params else {
                throw DTMError.invalidArgument("params: missing")
            }
            var request = params.model
            // JSON-RPC clients mark their transactions so that branches are called with JSON-RPC (spec §7.4).
            if params.protocol == nil || params.protocol == "" { request.transProtocol = TransProtocol.jsonRPC }
            return request
        } catch let e as DTMError {
            throw e
        } catch {
            throw DTMError.invalidArgument(describe(error))
        }
    }

    private func reply(id: String?, error: (Int64, String)?, result: ((inout JSONWriter) -> Void)?) -> APIResponse {
        var w = JSONWriter()
        w.beginObject()
        w.field("jsonrpc", "2.0")
        w.key("id")
        if let id { w.string(id) } else { w.null() }
        w.key("error")
        if let (code, message) = error {
            w.beginObject(); w.field("code", code); w.field("message", message); w.endObject()
        } else {
            w.null()
        }
        w.key("result")
        if let result { result(&w) } else { w.null() }
        w.endObject()
        return APIResponse(status: 200, body: w.bytes)
    }
}
