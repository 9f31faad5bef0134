/// Status of a global transaction (spec §2.4). `succeed` and `failed` are final.
package enum GlobalStatus: String, Sendable, Codable, CaseIterable {
    case prepared, submitted, aborting, succeed, failed

    package var isFinished: Bool { self == .succeed || self == .failed }
}

/// Status of one stored branch operation row.
package enum BranchStatus: String, Sendable, Codable {
    case prepared, succeed, failed
}

/// The transaction modes DTM knows.
package enum TransType: String, Sendable, Codable, CaseIterable {
    case saga, msg, tcc, xa, workflow
}

/// Branch operation names (the `op` column and the `op` query parameter / `dtm-op` metadata).
package enum BranchOp {
    package static let action = "action"
    package static let compensate = "compensate"
    package static let confirm = "confirm"
    package static let cancel = "cancel"
    package static let commit = "commit"
    package static let rollback = "rollback"
    package static let msg = "msg"
}

/// Protocols a transaction's branches are called with (the `protocol` column).
package enum TransProtocol {
    package static let http = "http"
    package static let grpc = "grpc"
    package static let jsonRPC = "json-rpc"
}
