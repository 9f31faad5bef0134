/// One global transaction, as stored in `trans_global` (spec §2.1).
package struct GlobalTransaction: Sendable, Equatable {
    package var id: Int64 = 0
    package var gid: String
    package var transType: TransType
    package var status: GlobalStatus
    package var queryPrepared: String = ""
    package var transProtocol: String = TransProtocol.http
    package var createTime: Timestamp
    package var updateTime: Timestamp
    package var finishTime: Timestamp?
    package var rollbackTime: Timestamp?
    package var options: TransOptions = TransOptions()
    package var customData: String = ""
    /// Current retry interval in seconds (doubles on back-off).
    package var nextCronInterval: Int64 = 0
    package var nextCronTime: Timestamp?
    package var owner: String = ""
    package var extData: String = ""
    package var result: String = ""
    package var rollbackReason: String = ""

    package init(gid: String, transType: TransType, status: GlobalStatus, createTime: Timestamp) {
        self.gid = gid
        self.transType = transType
        self.status = status
        self.createTime = createTime
        self.updateTime = createTime
    }
}
