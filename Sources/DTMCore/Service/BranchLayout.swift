/// How branch rows are generated when a transaction is saved (spec §2.6).
enum BranchLayout {
    /// `"01"`, `"02"`, … `"99"`, `"100"` — the 1-based step number, at least two digits.
    static func stepID(_ step: Int) -> String {
        step < 9 ? "0\(step + 1)" : "\(step + 1)"
    }

    /// Saga: two rows per step, compensate first, then action.
    static func saga(_ request: TransactionRequest, payloads: [[UInt8]], now: Timestamp) -> [Branch] {
        var rows: [Branch] = []
        rows.reserveCapacity(request.steps.count * 2)
        for (i, step) in request.steps.enumerated() {
            let id = stepID(i)
            rows.append(Branch(gid: request.gid, url: step.compensate, binData: payloads[i], branchID: id, op: BranchOp.compensate, createTime: now))
            rows.append(Branch(gid: request.gid, url: step.action, binData: payloads[i], branchID: id, op: BranchOp.action, createTime: now))
        }
        return rows
    }

    /// Msg: one action row per step (topics are expanded by the caller into `urls`).
    static func msg(gid: String, urls: [[String]], payloads: [[UInt8]], now: Timestamp) -> [Branch] {
        var rows: [Branch] = []
        for (i, stepURLs) in urls.enumerated() {
            for (j, url) in stepURLs.enumerated() {
                let id = stepURLs.count == 1 ? stepID(i) : "\(stepID(i))-\(stepID(j))"
                rows.append(Branch(gid: gid, url: url, binData: payloads[i], branchID: id, op: BranchOp.action, createTime: now))
            }
        }
        return rows
    }
}
