/// Every check of client input, in one place: each entry point (JSON, JSON-RPC, gRPC) reaches the coordinator, which
/// asks this before building or storing anything. A refusal is the first problem found, naming the field.
package struct TransactionValidator: Sendable {
    package let limits: Limits
    package let allowList: BranchHostAllowList?
    let coding: any TextCoding

    package init(config: EngineConfig, coding: any TextCoding) {
        self.limits = config.limits
        self.allowList = config.branchHostAllowList
        self.coding = coding
    }

    package func checkGid(_ gid: String) throws(DTMError) { try limits.checkGid(gid) }

    /// Throws unless `url` names an allowed host (when an allow-list is configured). An empty URL is always fine.
    package func checkBranchHost(_ url: String, field: String) throws(DTMError) {
        try allowList?.check(url, field: field)
    }

    package func transType(_ raw: String) throws(DTMError) -> TransType {
        guard let type = TransType(rawValue: raw) else {
            if raw.isEmpty { throw .invalidArgument("trans_type is missing or empty") }
            throw .invalidArgument("unknown trans_type '\(raw.prefix(64))'; expected saga, msg, tcc, xa or workflow")
        }
        return type
    }

    /// A new transaction (prepare, submit, prepareWorkflow) stored with `status`. `msgURLs`: the resolved URLs of
    /// each msg step (topics expanded); nil means each step's action.
    package func check(_ request: TransactionRequest, status: GlobalStatus, msgURLs: [[String]]? = nil) throws(DTMError) -> TransType {
        try limits.checkGid(request.gid)
        let type = try transType(request.transType)
        if request.steps.count > limits.maxSteps {
            throw .invalidArgument("\(request.steps.count) steps; the limit is \(limits.maxSteps)")
        }
        if !request.payloads.isEmpty && request.payloads.count != request.steps.count {
            throw .invalidArgument("payloads has \(request.payloads.count) entries but steps has \(request.steps.count)")
        }
        try limits.checkOptions(request.options)
        if request.customData.utf8.count > limits.maxCustomDataLength {
            throw .invalidArgument("custom_data is \(request.customData.utf8.count) bytes long; the limit is \(limits.maxCustomDataLength)")
        }
        if request.queryPrepared.utf8.count > limits.maxURLLength {
            throw .invalidArgument("query_prepared is \(request.queryPrepared.utf8.count) bytes long; the limit is \(limits.maxURLLength)")
        }
        try checkBranchHost(request.queryPrepared, field: "query_prepared")
        for (i, step) in request.steps.enumerated() {
            for url in [step.action, step.compensate] {
                if url.utf8.count > limits.maxURLLength {
                    throw .invalidArgument("steps[\(i)] has a url of \(url.utf8.count) bytes; the limit is \(limits.maxURLLength)")
                }
                if !url.hasPrefix("topic://") { try checkBranchHost(url, field: "steps[\(i)]") }
            }
        }
        switch type {
        case .saga:
            if request.steps.isEmpty && status == .submitted { throw .invalidArgument("a saga needs at least one step") }
            if !request.customData.isEmpty {
                let custom: SagaCustomData
                do {
                    custom = try coding.decode(SagaCustomData.self, from: request.customData)
                } catch {
                    throw .invalidArgument("custom_data is not valid saga custom data: \(error)")
                }
                _ = try SagaPlan(stepCount: request.steps.count, customData: custom)
            }
        case .msg:
            if request.steps.isEmpty && status == .submitted { throw .invalidArgument("a msg needs at least one step") }
            if !request.customData.isEmpty {
                let custom: MsgCustomData
                do {
                    custom = try coding.decode(MsgCustomData.self, from: request.customData)
                } catch {
                    throw .invalidArgument("custom_data is not valid msg custom data ({\"delay\": seconds}): \(error)")
                }
                if let delay = custom.delay { try limits.checkSeconds(delay, "custom_data delay") }
            }
            let rows = msgURLs.map { $0.reduce(0) { $0 + $1.count } } ?? request.steps.count
            if rows > limits.maxBranchRows {
                throw .invalidArgument("the msg expands to \(rows) branches with its topics' subscribers; the limit is \(limits.maxBranchRows)")
            }
        case .tcc, .xa, .workflow:
            break
        }
        return type
    }

    /// A branch registration (registerBranch): its id, its type, and for a workflow its progress.
    package func check(_ registration: BranchRegistration) throws(DTMError) -> TransType {
        try limits.checkGid(registration.gid)
        let id = registration.branchID
        if id.isEmpty { throw .invalidArgument("branch_id is missing or empty") }
        if id.utf8.count > limits.maxBranchIDLength {
            throw .invalidArgument("branch_id is \(id.utf8.count) bytes long; the limit is \(limits.maxBranchIDLength)")
        }
        guard let type = TransType(rawValue: registration.transType), type == .tcc || type == .xa || type == .workflow else {
            throw .invalidArgument("unknow trans type: \(registration.transType)")
        }
        if type == .workflow {
            guard let op = registration.data["op"], !op.isEmpty else { throw .invalidArgument("workflow registerBranch needs 'op'") }
            guard let status = BranchStatus(rawValue: registration.data["status"] ?? ""), status != .prepared else {
                throw .invalidArgument("workflow registerBranch needs 'status' 'succeed' or 'failed'")
            }
        }
        return type
    }

    /// The rows a registration adds: their URLs, and the gid's row count with them.
    package func check(rows: [Branch], existing: Int, gid: String) throws(DTMError) {
        for row in rows {
            if row.url.utf8.count > limits.maxURLLength {
                throw .invalidArgument("\(row.op) url is \(row.url.utf8.count) bytes long; the limit is \(limits.maxURLLength)")
            }
            try checkBranchHost(row.url, field: row.op)
        }
        // Bounded per transaction: a client registering branches in a loop cannot grow one gid without end.
        if existing + rows.count > limits.maxBranchRows {
            throw .invalidArgument(
                "gid \(gid) has \(existing) branch rows; registering \(rows.count) more exceeds the limit of \(limits.maxBranchRows) (2 × MaxSteps)")
        }
    }

    /// A topic subscription.
    package func checkSubscription(topic: String, url: String, remark: String) throws(DTMError) {
        if topic.utf8.count > limits.maxTopicLength {
            throw .invalidArgument("topic is \(topic.utf8.count) bytes long; the limit is \(limits.maxTopicLength)")
        }
        if url.utf8.count > limits.maxURLLength {
            throw .invalidArgument("url is \(url.utf8.count) bytes long; the limit is \(limits.maxURLLength)")
        }
        if remark.utf8.count > limits.maxRemarkLength {
            throw .invalidArgument("remark is \(remark.utf8.count) bytes long; the limit is \(limits.maxRemarkLength)")
        }
        try checkBranchHost(url, field: "url")
    }
}
