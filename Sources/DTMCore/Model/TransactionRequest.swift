/// A step of a saga or msg as the client sends it.
package struct TransStep: Sendable, Equatable {
    package var action: String
    package var compensate: String
    /// Legacy payload form (spec §17.9): used when `payloads` is empty.
    package var data: String?

    package init(action: String, compensate: String = "", data: String? = nil) {
        self.action = action
        self.compensate = compensate
        self.data = data
    }
}

/// What prepare / submit / abort / prepareWorkflow receive, from either protocol, after decoding.
package struct TransactionRequest: Sendable, Equatable {
    package var gid: String
    /// Raw `trans_type` text; validated by the coordinator so the error can name the bad value.
    package var transType: String
    package var steps: [TransStep] = []
    /// One payload per step (HTTP `payloads` as bytes, gRPC `BinPayloads`).
    package var payloads: [[UInt8]] = []
    package var customData: String = ""
    package var queryPrepared: String = ""
    package var transProtocol: String = TransProtocol.http
    package var options: TransOptions = TransOptions()
    package var rollbackReason: String = ""
    /// Workflow submit: `status`, `rollback_reason`, `result`.
    package var reqExtra: [String: String] = [:]
    /// The trace context of the API call's span (set while tracing): stored with a new transaction, parent of the
    /// rounds this call starts.
    package var trace: TraceHeaders?

    package init(gid: String, transType: String) {
        self.gid = gid
        self.transType = transType
    }
}

/// What registerBranch receives (spec §4.7): the flat string map, with the common keys lifted out.
package struct BranchRegistration: Sendable, Equatable {
    package var gid: String
    package var transType: String
    package var branchID: String
    /// Type-specific keys: `confirm`/`cancel` (tcc), `url` (xa), `op`/`status`/`sync` (workflow).
    package var data: [String: String]
    package var busiPayload: [UInt8]

    package init(gid: String, transType: String, branchID: String, data: [String: String], busiPayload: [UInt8]) {
        self.gid = gid
        self.transType = transType
        self.branchID = branchID
        self.data = data
        self.busiPayload = busiPayload
    }
}
