/// One global transaction, as stored in `trans_global` (spec §2.1).
public struct GlobalTransaction: Sendable, Equatable {
    public var id: Int64 = 0
    public var gid: String
    public var transType: TransType
    public var status: GlobalStatus
    public var queryPrepared: String = ""
    public var transProtocol: String = TransProtocol.http
    public var createTime: Timestamp
    public var updateTime: Timestamp
    public var finishTime: Timestamp?
    public var rollbackTime: Timestamp?
    public var options: TransOptions = TransOptions()
    public var customData: String = ""
    /// Current retry interval in seconds (doubles on back-off).
    public var nextCronInterval: Int64 = 0
    public var nextCronTime: Timestamp?
    public var owner: String = ""
    public var extData: String = ""
    public var result: String = ""
    public var rollbackReason: String = ""

    public init(gid: String, transType: TransType, status: GlobalStatus, createTime: Timestamp) {
        self.gid = gid
        self.transType = transType
        self.status = status
        self.createTime = createTime
        self.updateTime = createTime
    }
}
