package import DTMCore

/// Every method the gRPC listener answers besides server reflection, listed once: its path, the token it needs and
/// its metrics label. The service's dispatch, the token check, the metrics and reflection's service list all read
/// this table.
package enum DtmMethod: String, CaseIterable, Sendable {
    case newGid = "/dtmgimp.Dtm/NewGid"
    case submit = "/dtmgimp.Dtm/Submit"
    case prepare = "/dtmgimp.Dtm/Prepare"
    case abort = "/dtmgimp.Dtm/Abort"
    case registerBranch = "/dtmgimp.Dtm/RegisterBranch"
    case prepareWorkflow = "/dtmgimp.Dtm/PrepareWorkflow"
    case subscribe = "/dtmgimp.Dtm/Subscribe"
    case unsubscribe = "/dtmgimp.Dtm/Unsubscribe"
    case deleteTopic = "/dtmgimp.Dtm/DeleteTopic"
    case healthCheck = "/grpc.health.v1.Health/Check"

    /// The token a call needs (README, Security): the health check is open, the topic methods are admin APIs.
    package var access: AccessPolicy.Level {
        switch self {
        case .healthCheck: return .open
        case .subscribe, .unsubscribe, .deleteTopic: return .admin
        case .newGid, .submit, .prepare, .abort, .registerBranch, .prepareWorkflow: return .client
        }
    }

    /// DTM's `api` label: the method name, lowercased.
    package var metricLabel: String { name.lowercased() }

    /// The method's name: `Submit`, `Check`.
    package var name: String { String(rawValue.split(separator: "/").last ?? "") }

    /// The gRPC service: `dtmgimp.Dtm`, `grpc.health.v1.Health`.
    package var service: String { String(rawValue.split(separator: "/").first ?? "") }

    package init?(path: String) { self.init(rawValue: path) }
}
