import DTMCore
import DTMMetrics
import FoundationEssentials
import Logging

/// The JSON API `/api/dtmsvr/*` (spec §4), independent of the socket: method, target and body in, response out.
/// Each route decodes its input, calls the Coordinator and encodes DTM's response shape.
public struct APIRouter: Sendable {
    public let coordinator: Coordinator
    public let version: String
    let metrics: DTMMetrics?
    /// When set, every route but ping and metrics needs `Authorization: Bearer <token>`.
    let authToken: BearerToken?
    let logger: Logger

    public init(coordinator: Coordinator, version: String, metrics: DTMMetrics? = nil, authToken: BearerToken? = nil, logger: Logger) {
        self.coordinator = coordinator
        self.version = version
        self.metrics = metrics
        self.authToken = authToken
        self.logger = logger
    }

    public func handle(method: String, uri: String, authorization: String? = nil, body: [UInt8]) async -> APIResponse {
        let started = ContinuousClock.now
        let response: APIResponse
        if let authToken, !BearerToken.isPublic(path: RequestTarget(uri).path), !authToken.accepts(authorization) {
            logger.notice("request refused: missing or wrong bearer token", metadata: ["uri": .string(String(RequestTarget(uri).path))])
            response = APIResponse(status: 401, body: Array(#"{"message":"missing or wrong bearer token (Authorization: Bearer <token>)"}"#.utf8))
        } else {
            response = await respond(method: method, uri: uri, body: body)
        }
        if let metrics {
            let path = RequestTarget(uri).path
            let api = path.split(separator: "/").last.map { $0.lowercased() } ?? ""
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            metrics.apiCall(type: .http, api: api, failed: response.status >= 400, seconds: seconds)
        }
        return response
    }

    private func respond(method: String, uri: String, body: [UInt8]) async -> APIResponse {
        let target = RequestTarget(uri)
        var gid: String?
        do {
            return try await route(method: method, target: target, body: body, gid: &gid)
        } catch {
            let response = APIResponse.error(error, gid: gid)
            var meta: Logger.Metadata = ["uri": .string(String(target.path)), "status": .stringConvertible(response.status), "error": .string("\(error)")]
            if let gid { meta["gid"] = .string(gid) }
            if response.status >= 500 { logger.error("request failed", metadata: meta) } else { logger.info("request refused", metadata: meta) }
            return response
        }
    }

    private func route(method: String, target: RequestTarget, body: [UInt8], gid: inout String?) async throws -> APIResponse {
        let path = target.path
        if path == "/api/ping" { return APIResponse.json { $0.beginObject(); $0.field("msg", "pong"); $0.endObject() } }
        if path == "/api/metrics" && method == "GET", let metrics {
            return APIResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.exposition())
        }
        if path == "/api/json-rpc" {
            guard method == "POST" else { return .notFound }
            return await JSONRPCEndpoint(coordinator: coordinator).handle(body)
        }
        guard path.hasPrefix("/api/dtmsvr/") else { return .notFound }
        let name = path.dropFirst("/api/dtmsvr/".count)
        switch (method, name) {
        case ("GET", "version"):
            return .json { $0.beginObject(); $0.field("version", version); $0.endObject() }
        case ("GET", "newGid"):
            let new = coordinator.newGid()
            return .json { $0.beginObject(); $0.field("gid", new); $0.field("dtm_result", "SUCCESS"); $0.endObject() }
        case ("POST", "prepare"):
            let request = try TransactionRequestJSON.decode(body)
            gid = request.gid
            try await coordinator.prepare(request)
            return .success
        case ("POST", "submit"):
            let request = try TransactionRequestJSON.decode(body)
            gid = request.gid
            try await coordinator.submit(request)
            return .success
        case ("POST", "abort"):
            let request = try TransactionRequestJSON.decode(body)
            gid = request.gid
            try await coordinator.abort(request)
            return .success
        case ("POST", "forceStop"):
            let request = try TransactionRequestJSON.decode(body)
            gid = request.gid
            try await coordinator.forceStop(gid: request.gid)
            return .success
        case ("POST", "resetNextCronTime"):
            let request = try TransactionRequestJSON.decode(body)
            gid = request.gid
            try await coordinator.resetNextCronTime(gid: request.gid)
            return .success
        case ("POST", "registerBranch"), ("POST", "registerTccBranch"), ("POST", "registerXaBranch"):
            let registration = try BranchRegistrationJSON.decode(body)
            gid = registration.gid
            try await coordinator.registerBranch(registration)
            return .success
        case ("POST", "prepareWorkflow"):
            let request = try TransactionRequestJSON.decode(body)
            gid = request.gid
            let (transaction, progresses) = try await coordinator.prepareWorkflow(request)
            return .json {
                $0.beginObject()
                $0.key("transaction"); $0.transaction(transaction)
                $0.key("progresses"); $0.branches(progresses)
                $0.endObject()
            }
        case ("GET", "query"):
            guard let g = target["gid"], !g.isEmpty else { throw DTMError.other("no gid specified") }
            gid = g
            let (transaction, branches) = try await coordinator.query(gid: g)
            return .json {
                $0.beginObject()
                $0.key("transaction")
                if let transaction { $0.transaction(transaction) } else { $0.null() }
                $0.key("branches"); $0.branches(branches)
                $0.endObject()
            }
        case ("GET", "all"):
            return try await all(target)
        case ("GET", "subscribe"):
            try await coordinator.subscribe(topic: target["topic"] ?? "", url: target["url"] ?? "", remark: target["remark"] ?? "")
            return .success
        case ("GET", "unsubscribe"):
            try await coordinator.unsubscribe(topic: target["topic"] ?? "", url: target["url"] ?? "")
            return .success
        case ("DELETE", _) where name.hasPrefix("topic/"):
            try await coordinator.deleteTopic(String(name.dropFirst("topic/".count)))
            return .success
        case ("GET", "scanKV"):
            let limit = try integer(target["limit"].flatMap { $0.isEmpty ? nil : $0 } ?? "100", "limit")
            guard limit > 0 && limit <= 10_000 else { throw DTMError.invalidArgument("limit must be between 1 and 10000") }
            let positionText = target["position"] ?? ""
            let position = try positionText.isEmpty ? nil : integer(positionText, "position")
            let (records, next) = try await coordinator.scanKV(cat: target["cat"] ?? "", position: position, limit: Int(limit))
            return .json {
                $0.beginObject()
                $0.key("kv"); $0.beginArray(); for r in records { $0.kv(r) }; $0.endArray()
                $0.field("next_position", next.map { String($0) } ?? "")
                $0.endObject()
            }
        case ("GET", "queryKV"):
            let records = try await coordinator.queryKV(cat: target["cat"] ?? "", key: target["key"] ?? "")
            return .json {
                $0.beginObject(); $0.key("kv"); $0.beginArray(); for r in records { $0.kv(r) }; $0.endArray(); $0.endObject()
            }
        case ("GET", "resetCronTime"):
            let timeout = try target["timeout"].flatMap { $0.isEmpty ? nil : try integer($0, "timeout") }
            let limit = try target["limit"].flatMap { $0.isEmpty ? nil : try integer($0, "limit") }
            let (count, remaining) = try await coordinator.resetCronTime(timeout: timeout, limit: limit.map { Int($0) })
            return .json {
                $0.beginObject(); $0.field("has_remaining", remaining); $0.field("succeed_count", Int64(count)); $0.endObject()
            }
        default:
            return .notFound
        }
    }

    /// `all` (spec §4.10).
    private func all(_ target: RequestTarget) async throws -> APIResponse {
        let positionText = target["position"] ?? ""
        if let g = target["gid"], !g.isEmpty {
            let (transaction, _) = try await coordinator.query(gid: g)
            return .json {
                $0.beginObject()
                $0.key("transactions")
                if let transaction { $0.beginArray(); $0.transaction(transaction); $0.endArray() } else { $0.null() }
                $0.field("next_position", positionText)
                $0.endObject()
            }
        }
        let limit = try integer(target["limit"].flatMap { $0.isEmpty ? nil : $0 } ?? "100", "limit")
        guard limit > 0 && limit <= 10_000 else { throw DTMError.invalidArgument("limit must be between 1 and 10000") }
        let position = try positionText.isEmpty ? nil : integer(positionText, "position")
        var filter = TransactionFilter()
        filter.status = target["status"] ?? ""
        filter.transType = target["transType"] ?? ""
        // Epoch milliseconds, truncated to whole seconds as DTM does.
        if let s = target["createTimeStart"], !s.isEmpty { filter.createTimeStart = Timestamp(microseconds: try integer(s, "createTimeStart") / 1000 * 1_000_000) }
        if let s = target["createTimeEnd"], !s.isEmpty { filter.createTimeEnd = Timestamp(microseconds: try integer(s, "createTimeEnd") / 1000 * 1_000_000) }
        let (rows, next) = try await coordinator.all(position: position, limit: Int(limit), filter: filter)
        return .json {
            $0.beginObject()
            $0.key("transactions"); $0.beginArray(); for t in rows { $0.transaction(t) }; $0.endArray()
            $0.field("next_position", next.map { String($0) } ?? "")
            $0.endObject()
        }
    }

    private func integer(_ text: String, _ name: String) throws -> Int64 {
        guard let v = Int64(text) else { throw DTMError.invalidArgument("\(name) must be an integer, got '\(text.prefix(32))'") }
        return v
    }
}
