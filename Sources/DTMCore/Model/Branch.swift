/// One stored branch operation, a row of `trans_branch_op` (spec §2.2).
/// Rows of a transaction keep insertion order; the processors index them by position.
public struct Branch: Sendable, Equatable {
    public var id: Int64 = 0
    public var gid: String
    public var url: String
    public var binData: [UInt8]
    public var branchID: String
    public var op: String
    public var status: BranchStatus
    public var finishTime: Timestamp?
    public var rollbackTime: Timestamp?
    public var createTime: Timestamp
    public var updateTime: Timestamp

    public init(
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
public struct KVRecord: Sendable, Equatable {
    public var id: Int64 = 0
    public var cat: String
    public var key: String
    public var value: String
    public var version: Int64 = 1
    public var createTime: Timestamp
    public var updateTime: Timestamp

    public init(cat: String, key: String, value: String, createTime: Timestamp) {
        self.cat = cat
        self.key = key
        self.value = value
        self.createTime = createTime
        self.updateTime = createTime
    }
}
