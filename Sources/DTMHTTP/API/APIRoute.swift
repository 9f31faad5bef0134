import DTMCore

/// Every route of the HTTP API, listed once (README, Security): its method and path, the token it needs, its
/// metrics label, and whether it is an operator's action that changes something (logged as `admin action`). The
/// router's dispatch, the token check, the metrics labels and the action log all read this table.
enum APIRoute: CaseIterable {
    case ping, metrics, jsonRPC
    case version, newGid, prepare, submit, abort, registerBranch, registerTccBranch, registerXaBranch, prepareWorkflow, query
    case forceStop, resetNextCronTime, resetCronTime, all, subscribe, unsubscribe, deleteTopic, scanKV, queryKV, stats, attention

    struct Spec {
        /// `nil`: any method (the route answers 404 to the ones it does not serve).
        let method: String?
        /// The path, or its prefix (`/api/dtmsvr/topic/` + name).
        let path: String
        let isPrefix: Bool
        let access: AccessPolicy.Level
        let label: String
        let isAdminAction: Bool
    }

    var spec: Spec {
        func dtm(_ method: String, _ name: String, _ access: AccessPolicy.Level, admin: Bool = false) -> Spec {
            Spec(method: method, path: "/api/dtmsvr/" + name, isPrefix: false, access: access, label: name.lowercased(), isAdminAction: admin)
        }
        switch self {
        case .ping: return Spec(method: nil, path: "/api/ping", isPrefix: false, access: .open, label: "ping", isAdminAction: false)
        case .metrics: return Spec(method: "GET", path: "/api/metrics", isPrefix: false, access: .open, label: "metrics", isAdminAction: false)
        case .jsonRPC: return Spec(method: "POST", path: "/api/json-rpc", isPrefix: false, access: .client, label: "json-rpc", isAdminAction: false)
        case .version: return dtm("GET", "version", .client)
        case .newGid: return dtm("GET", "newGid", .client)
        case .prepare: return dtm("POST", "prepare", .client)
        case .submit: return dtm("POST", "submit", .client)
        case .abort: return dtm("POST", "abort", .client)
        case .registerBranch: return dtm("POST", "registerBranch", .client)
        case .registerTccBranch: return dtm("POST", "registerTccBranch", .client)
        case .registerXaBranch: return dtm("POST", "registerXaBranch", .client)
        case .prepareWorkflow: return dtm("POST", "prepareWorkflow", .client)
        case .query: return dtm("GET", "query", .client)
        case .forceStop: return dtm("POST", "forceStop", .admin, admin: true)
        case .resetNextCronTime: return dtm("POST", "resetNextCronTime", .admin, admin: true)
        case .resetCronTime: return dtm("GET", "resetCronTime", .admin, admin: true)
        case .all: return dtm("GET", "all", .admin)
        case .subscribe: return dtm("GET", "subscribe", .admin, admin: true)
        case .unsubscribe: return dtm("GET", "unsubscribe", .admin, admin: true)
        case .deleteTopic:
            return Spec(method: "DELETE", path: "/api/dtmsvr/topic/", isPrefix: true, access: .admin, label: "topic", isAdminAction: true)
        case .scanKV: return dtm("GET", "scanKV", .admin)
        case .queryKV: return dtm("GET", "queryKV", .admin)
        case .stats: return dtm("GET", "stats", .admin)
        case .attention: return dtm("GET", "attention", .admin)
        }
    }

    /// The route of a path, whatever the method (its token level and label apply to every method).
    static func route(path: Substring) -> APIRoute? {
        if let route = byPath[path] { return route }
        return prefixed.first { path.hasPrefix($0.spec.path) }
    }

    /// The route that serves `method` on `path`, or nil (404).
    static func route(method: String, path: Substring) -> APIRoute? {
        guard let route = route(path: path) else { return nil }
        if let wanted = route.spec.method, wanted != method { return nil }
        return route
    }

    private static let byPath: [Substring: APIRoute] = Dictionary(
        uniqueKeysWithValues: allCases.filter { !$0.spec.isPrefix }.map { (Substring($0.spec.path), $0) })
    private static let prefixed = allCases.filter { $0.spec.isPrefix }
}
