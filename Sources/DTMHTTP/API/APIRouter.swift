package import DTMCore
package import DTMMetrics
import FoundationEssentials
package import Logging

/// The JSON API `/api/dtmsvr/*` (spec §4), independent of the socket: method, target and body in, response out.
/// Each route decodes its input, calls the Coordinator and encodes DTM's response shape.
package struct APIRouter: Sendable {
    package let coordinator: Coordinator
    package let version: String
    let metrics: DTMMetrics?
    /// Which token each route needs (README, Security).
    let access: AccessPolicy
    /// The admin console's pages (`AdminBasePath`).
    let console: ConsoleRoutes
    /// Which hosts, origins and fetch sites a request may come with (README, Security).
    let browser: BrowserOriginPolicy
    let logger: Logger

    package init(
        coordinator: Coordinator, version: String, metrics: DTMMetrics? = nil, access: AccessPolicy = .open, consoleBasePath: String = "",
        browser: BrowserOriginPolicy = .anyHost, logger: Logger
    ) {
        self.coordinator = coordinator
        self.version = version
        self.metrics = metrics
        self.access = access
        self.console = ConsoleRoutes(basePath: consoleBasePath)
        self.browser = browser
        self.logger = logger
    }

    /// The token level a request needs (`APIRoute`); paths outside the table need the client token.
    static func level(path: Substring) -> AccessPolicy.Level { APIRoute.route(path: path)?.spec.access ?? .client }

    /// Answers a request whose head has not been checked yet (the fuzz harness and tests call this).
    package func handle(method: String, uri: String, authorization: String? = nil, body: [UInt8]) async -> APIResponse {
        if let refusal = admission(method: method, uri: uri, authorization: authorization, headers: .init()) { return refusal }
        return await handleAdmitted(method: method, uri: uri, authorization: authorization, body: body)
    }

    /// Checks a request's head before its body is read: the browser-origin rules, then the token. A refusal is
    /// the answer (counted in the metrics and logged); nil lets the request through to `handleAdmitted`.
    package func admission(method: String, uri: String, authorization: String?, headers: BrowserOriginPolicy.Headers) -> APIResponse? {
        let path = RequestTarget.path(of: uri)
        let response: APIResponse
        if let reason = browser.refusal(path: path, headers: headers) {
            logger.notice(
                "request refused: browser origin", metadata: ["uri": .string(String(path.prefix(256))), "reason": .string(reason)])
            response = Self.refusal(status: 403, reason)
        } else {
            if method == "GET" || method == "HEAD", !path.hasPrefix("/api/"), console.response(path: path) != nil { return nil }
            let level = Self.level(path: path)
            if access.allows(level, authorization: authorization) { return nil }
            logger.notice(
                "request refused: missing or wrong bearer token",
                metadata: ["uri": .string(String(path.prefix(256))), "needs": .string(level == .admin ? "AdminToken" : "AuthToken")])
            response = Self.refusal(status: 401, "missing or wrong bearer token (Authorization: Bearer <token>)")
        }
        metrics?.apiCall(type: .http, api: Self.metricsLabel(path: path), failed: true, started: ContinuousClock.now)
        return response
    }

    /// Whether API calls are traced (the listener then reads `traceparent` and `tracestate` for `handleAdmitted`).
    package var tracing: Bool { coordinator.context.tracer != nil }

    /// Answers a request that `admission` let through; `trace` is the context its headers carried.
    package func handleAdmitted(method: String, uri: String, authorization: String?, body: [UInt8], trace: TraceHeaders? = nil) async -> APIResponse {
        let started = ContinuousClock.now
        let path = RequestTarget.path(of: uri)
        if method == "GET" || method == "HEAD", !path.hasPrefix("/api/"), let page = console.response(path: path) {
            metrics?.apiCall(type: .http, api: "console", failed: false, started: started)
            return page
        }
        let span = coordinator.context.tracer.flatMap { Self.span($0, method: method, path: path, parent: trace) }
        var response = await respond(
            method: method, uri: uri, body: body, revealSecrets: access.revealsSecrets(authorization: authorization), span: span)
        if let span {
            span.set("http.response.status_code", .int(Int64(response.status)))
            if response.status >= 500 { span.fail("HTTP \(response.status)") } else { span.end() }
        }
        if let metrics {
            metrics.apiCall(type: .http, api: Self.metricsLabel(path: path), failed: response.status >= 400, started: started)
        }
        // Answers may hold transaction data and branch_headers: no cache, shared or private, may keep them.
        if response.headers["Cache-Control"] == nil { response.headers["Cache-Control"] = "no-store" }
        return response
    }

    /// The server span of an API call, named by its route (`POST /api/dtmsvr/submit`), so that no request can
    /// choose a span name; none for the health check and the metrics scrape.
    private static func span(_ tracer: any TransactionTracer, method: String, path: Substring, parent: TraceHeaders?) -> (any TraceSpan)? {
        let route = APIRoute.route(path: path)
        if route == .ping || route == .metrics { return nil }
        let knownMethod = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"].contains(method) ? method : "_OTHER"
        var attributes: [String: TraceValue] = ["http.request.method": .string(knownMethod), "url.path": .string(String(path.prefix(256)))]
        if let route { attributes["http.route"] = .string(route.spec.path) }
        return tracer.span(route.map { "\(knownMethod) \($0.spec.path)" } ?? knownMethod, kind: .server, parent: parent, attributes)
    }

    private static func refusal(status: Int, _ message: String) -> APIResponse {
        var w = JSONWriter()
        w.beginObject()
        w.field("message", message)
        w.endObject()
        return APIResponse(status: status, body: w.bytes, headers: ["Cache-Control": "no-store"])
    }

    /// The metrics label `api`: the route's (`APIRoute`), `other` for anything else, so that no request can add a
    /// label value (DTM uses the raw path, an unbounded set).
    static func metricsLabel(path: Substring) -> String { APIRoute.route(path: path)?.spec.label ?? "other" }

    private func respond(method: String, uri: String, body: [UInt8], revealSecrets: Bool, span: (any TraceSpan)?) async -> APIResponse {
        let target = RequestTarget(uri)
        var gid: String?
        defer { if let span, let gid { span.set("dtm.gid", .string(Limits.shown(gid: gid))) } }
        do {
            let route = APIRoute.route(method: method, path: target.path)
            var response = APIResponse.notFound
            if let route {
                response = try await answer(route, target: target, body: body, gid: &gid, revealSecrets: revealSecrets, span: span)
            }
            if route?.spec.isAdminAction == true {
                var meta: Logger.Metadata = [
                    "op": .string(String(target.path.dropFirst("/api/dtmsvr/".count).prefix(128))),
                    "who": .string(access.hasAdminToken ? "AdminToken holder" : "anyone (no AdminToken set)"),
                    "uri": .string(String(uri.prefix(256))), "status": .stringConvertible(response.status),
                ]
                if let gid { meta["gid"] = .string(Limits.shown(gid: gid)) }
                logger.notice("admin action", metadata: meta)
            }
            return response
        } catch {
            let response = APIResponse.error(error, gid: gid)
            var meta: Logger.Metadata = ["uri": .string(String(target.path)), "status": .stringConvertible(response.status), "error": .string("\(error)")]
            if let gid { meta["gid"] = .string(Limits.shown(gid: gid)) }
            if response.status >= 500 { logger.error("request failed", metadata: meta) } else { logger.info("request refused", metadata: meta) }
            return response
        }
    }

    private func answer(
        _ route: APIRoute, target: RequestTarget, body: [UInt8], gid: inout String?, revealSecrets: Bool, span: (any TraceSpan)?
    ) async throws -> APIResponse {
        // The context stored with a new transaction and parent of the rounds the call starts: the call's span.
        let trace = span?.headers
        switch route {
        case .ping:
            return APIResponse.json {
                $0.beginObject(); $0.field("msg", "pong"); $0.endObject()
            }
        case .metrics:
            guard let metrics else { return .notFound }
            return APIResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.exposition())
        case .jsonRPC:
            return await JSONRPCEndpoint(coordinator: coordinator, span: span).handle(body)
        case .version:
            return .json {
                $0.beginObject(); $0.field("version", version); $0.endObject()
            }
        case .newGid:
            let new = coordinator.newGid()
            return .json {
                $0.beginObject(); $0.field("gid", new); $0.field("dtm_result", "SUCCESS"); $0.endObject()
            }
        case .prepare:
            var request = try TransactionRequestJSON.decode(body)
            gid = request.gid
            request.trace = trace
            try await coordinator.prepare(request)
            return .success
        case .submit:
            var request = try TransactionRequestJSON.decode(body)
            gid = request.gid
            request.trace = trace
            try await coordinator.submit(request)
            return .success
        case .abort:
            var request = try TransactionRequestJSON.decode(body)
            gid = request.gid
            request.trace = trace
            try await coordinator.abort(request)
            return .success
        case .forceStop:
            let request = try TransactionRequestJSON.decode(body)
            gid = request.gid
            try await coordinator.forceStop(gid: request.gid)
            return .success
        case .resetNextCronTime:
            let request = try TransactionRequestJSON.decode(body)
            gid = request.gid
            try await coordinator.resetNextCronTime(gid: request.gid)
            return .success
        case .registerBranch, .registerTccBranch, .registerXaBranch:
            let registration = try BranchRegistrationJSON.decode(body)
            gid = registration.gid
            try await coordinator.registerBranch(registration)
            return .success
        case .prepareWorkflow:
            var request = try TransactionRequestJSON.decode(body)
            gid = request.gid
            request.trace = trace
            let (transaction, progresses) = try await coordinator.prepareWorkflow(request)
            return .json {
                $0.beginObject()
                $0.key("transaction"); $0.transaction(transaction, revealSecrets: revealSecrets)
                $0.key("progresses"); $0.branches(progresses)
                $0.endObject()
            }
        case .query:
            guard let g = target["gid"], !g.isEmpty else { throw DTMError.other("no gid specified") }
            gid = g
            let (transaction, branches) = try await coordinator.query(gid: g)
            return .json {
                $0.beginObject()
                $0.key("transaction")
                if let transaction { $0.transaction(transaction, revealSecrets: revealSecrets) } else { $0.null() }
                $0.key("branches"); $0.branches(branches)
                $0.endObject()
            }
        case .all:
            return try await all(target, revealSecrets: revealSecrets)
        case .subscribe:
            try await coordinator.subscribe(topic: target["topic"] ?? "", url: target["url"] ?? "", remark: target["remark"] ?? "")
            return .success
        case .unsubscribe:
            try await coordinator.unsubscribe(topic: target["topic"] ?? "", url: target["url"] ?? "")
            return .success
        case .deleteTopic:
            try await coordinator.deleteTopic(String(target.path.dropFirst(route.spec.path.count)))
            return .success
        case .scanKV:
            let limit = try target.integer("limit", in: 1...Self.maxRowsPerCall, above: .clamp) ?? 100
            let position = try target.integer("position", in: 0...Int64.max)
            let (records, next) = try await coordinator.scanKV(cat: target["cat"] ?? "", position: position, limit: Int(limit))
            return .json {
                $0.beginObject()
                $0.key("kv"); $0.beginArray(); for r in records { $0.kv(r) }; $0.endArray()
                $0.field("next_position", next.map { String($0) } ?? "")
                $0.endObject()
            }
        case .stats:
            let b = try await coordinator.backlog()
            return .json {
                $0.beginObject()
                $0.field("prepared", Int64(b.prepared)); $0.field("submitted", Int64(b.submitted)); $0.field("aborting", Int64(b.aborting))
                $0.field("due", Int64(b.due)); $0.field("overdue", Int64(b.overdue)); $0.field("cap", Int64(Coordinator.backlogCap))
                $0.endObject()
            }
        case .attention:
            let limit = try target.integer("limit", in: 1...Self.maxRowsPerCall, above: .clamp) ?? 100
            let items = try await coordinator.attention(limit: Int(limit))
            return .json {
                $0.beginObject()
                $0.key("items"); $0.beginArray()
                for item in items {
                    $0.beginObject()
                    $0.key("transaction"); $0.transaction(item.transaction, revealSecrets: revealSecrets)
                    $0.field("last_error", item.lastError); $0.field("retries", Int64(item.retries)); $0.field("overdue", item.overdue)
                    $0.endObject()
                }
                $0.endArray()
                $0.endObject()
            }
        case .queryKV:
            let records = try await coordinator.queryKV(cat: target["cat"] ?? "", key: target["key"] ?? "")
            return .json {
                $0.beginObject(); $0.key("kv"); $0.beginArray(); for r in records { $0.kv(r) }; $0.endArray(); $0.endObject()
            }
        case .resetCronTime:
            let maxSeconds = coordinator.context.config.limits.maxOptionSeconds
            let timeout = try target.integer("timeout", in: -maxSeconds...maxSeconds)
            let limit = try target.integer("limit", in: 1...Self.maxRowsPerCall, above: .clamp)
            let (count, remaining) = try await coordinator.resetCronTime(timeout: timeout, limit: limit.map { Int($0) })
            return .json {
                $0.beginObject(); $0.field("has_remaining", remaining); $0.field("succeed_count", Int64(count)); $0.endObject()
            }
        }
    }

    /// `all` (spec §4.10).
    private func all(_ target: RequestTarget, revealSecrets: Bool) async throws -> APIResponse {
        let positionText = target["position"] ?? ""
        if let g = target["gid"], !g.isEmpty {
            let (transaction, _) = try await coordinator.query(gid: g)
            return .json {
                $0.beginObject()
                $0.key("transactions")
                if let transaction { $0.beginArray(); $0.transaction(transaction, revealSecrets: revealSecrets); $0.endArray() } else { $0.null() }
                $0.field("next_position", positionText)
                $0.endObject()
            }
        }
        let limit = try target.integer("limit", in: 1...Self.maxRowsPerCall, above: .clamp) ?? 100
        let position = try target.integer("position", in: 0...Int64.max)
        var filter = TransactionFilter()
        filter.status = target["status"] ?? ""
        filter.transType = target["transType"] ?? ""
        // Epoch milliseconds, truncated to whole seconds as DTM does.
        func time(_ name: String) throws(DTMError) -> Timestamp? {
            try target.integer(name, in: 0...Self.maxEpochMilliseconds).map { Timestamp(milliseconds: $0 / 1000 * 1000) }
        }
        filter.createTimeStart = try time("createTimeStart")
        filter.createTimeEnd = try time("createTimeEnd")
        let (rows, next) = try await coordinator.all(position: position, limit: Int(limit), filter: filter)
        return .json {
            $0.beginObject()
            $0.key("transactions"); $0.beginArray(); for t in rows { $0.transaction(t, revealSecrets: revealSecrets) }; $0.endArray()
            $0.field("next_position", next.map { String($0) } ?? "")
            $0.endObject()
        }
    }

    /// Most rows one call of `all`, `scanKV` or `resetCronTime` handles; a larger `limit` is clamped to it (DTM
    /// takes any), and `next_position` / `has_remaining` lead on to the rest.
    static let maxRowsPerCall: Int64 = 10_000
    /// Latest `createTimeStart` / `createTimeEnd` accepted, epoch milliseconds: the end of the year 9999.
    static let maxEpochMilliseconds: Int64 = 253_402_300_799_999
}
