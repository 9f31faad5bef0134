/// One stored branch operation, a row of `trans_branch_op` (spec §2.2).
/// Rows of a transaction keep insertion order; the processors index them by position.
package struct Branch: Sendable, Equatable {
    package var id: Int64 = 0
    package var gid: String
    package var url: String
    package var binData: [UInt8]
    package var branchID: String
    package var op: String
    package var status: BranchStatus
    package var finishTime: Timestamp?
    package var rollbackTime: Timestamp?
    package var createTime: Timestamp
    package var updateTime: Timestamp

    package init(
        gid: String, url: String, binData: [UInt8], branchID: String, op: String,
        status: BranchStatus = .prepared, createTime: Timestamp
    ) {
        self.gid = gid
        self.url = url
        self.binData = binData
        self.branchID = branchID
        self.op = op
        self.status = status
        self.createTime = createTime
        self.updateTime = createTime
    }
}

/// A key-value record (spec §2.7); the server uses category `topics`.
package struct KVRecord: Sendable, Equatable {
    package var id: Int64 = 0
    package var cat: String
    package var key: String
    package var value: String
    package var version: Int64 = 1
    package var createTime: Timestamp
    package var updateTime: Timestamp

    package init(cat: String, key: String, value: String, createTime: Timestamp) {
        self.cat = cat
        self.key = key
        self.value = value
        self.createTime = createTime
        self.updateTime = createTime
    }
}
