/// Status of a global transaction (spec §2.4). `succeed` and `failed` are final.
public enum GlobalStatus: String, Sendable, Codable, CaseIterable {
    case prepared, submitted, aborting, succeed, failed

    public var isFinished: Bool { self == .succeed || self == .failed }
}

/// Status of one stored branch operation row.
public enum BranchStatus: String, Sendable, Codable {
    case prepared, succeed, failed
}

/// The transaction modes DTM knows.
public enum TransType: String, Sendable, Codable, CaseIterable {
    case saga, msg, tcc, xa, workflow
}

/// Branch operation names (the `op` column and the `op` query parameter / `dtm-op` metadata).
public enum BranchOp {
    public static let action = "action"
    public static let compensate = "compensate"
    public static let confirm = "confirm"
    public static let cancel = "cancel"
    public static let commit = "commit"
    public static let rollback = "rollback"
    public static let msg = "msg"
}

/// Protocols a transaction's branches are called with (the `protocol` column).
public enum TransProtocol {
    public static let http = "http"
    public static let grpc = "grpc"
    public static let jsonRPC = "json-rpc"
}
