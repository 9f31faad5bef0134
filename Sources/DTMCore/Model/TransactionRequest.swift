/// A step of a saga or msg as the client sends it.
public struct TransStep: Sendable, Equatable {
    public var action: String
    public var compensate: String
    /// Legacy payload form (spec §17.9): used when `payloads` is empty.
    public var data: String?

    public init(action: String, compensate: String = "", data: String? = nil) {
        self.action = action
        self.compensate = compensate
        self.data = data
    }
}

/// What prepare / submit / abort / prepareWorkflow receive, from either protocol, after decoding.
public struct TransactionRequest: Sendable, Equatable {
    public var gid: String
    /// Raw `trans_type` text; validated by the coordinator so the error can name the bad value.
    public var transType: String
    public var steps: [TransStep] = []
    /// One payload per step (HTTP `payloads` as bytes, gRPC `BinPayloads`).
    public var payloads: [[UInt8]] = []
    public var customData: String = ""
    public var queryPrepared: String = ""
    public var transProtocol: String = TransProtocol.http
    public var options: TransOptions = TransOptions()
    public var rollbackReason: String = ""
    /// Workflow submit: `status`, `rollback_reason`, `result`.
    public var reqExtra: [String: String] = [:]

    public init(gid: String, transType: String) {
        self.gid = gid
        self.transType = transType
    }
}

/// What registerBranch receives (spec §4.7): the flat string map, with the common keys lifted out.
public struct BranchRegistration: Sendable, Equatable {
    public var gid: String
    public var transType: String
    public var branchID: String
    /// Type-specific keys: `confirm`/`cancel` (tcc), `url` (xa), `op`/`status`/`sync` (workflow).
    public var data: [String: String]
    public var busiPayload: [UInt8]

    public init(gid: String, transType: String, branchID: String, data: [String: String], busiPayload: [UInt8]) {
        self.gid = gid
        self.transType = transType
        self.branchID = branchID
        self.data = data
        self.busiPayload = busiPayload
    }
}
