import DTMCore
import JSONSupport

/// Model ⇄ row conversion. Column lists are fixed strings so that every statement is prepared once.
enum RowMapping {
    static let globalColumns = """
        id, gid, trans_type, status, query_prepared, protocol, create_time, update_time, finish_time, rollback_time, \
        options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason
        """
    static let branchColumns = "id, gid, url, bin_data, branch_id, op, status, finish_time, rollback_time, create_time, update_time"
    static let kvColumns = "id, cat, k, v, version, create_time, update_time"

    /// What row values weigh in memory, roughly: text and blob bytes, 8 per integer.
    static func byteCount(_ values: [SQLiteStatement.Value]) -> Int {
        values.reduce(0) { sum, value in
            switch value {
            case .text(let s): return sum + s.utf8.count
            case .blob(let b): return sum + b.count
            case .int, .null: return sum + 8
            }
        }
    }

    static func time(_ t: Timestamp?) -> SQLiteStatement.Value { t.map { .int($0.microseconds) } ?? .null }

    static func timestamp(_ s: SQLiteStatement, _ column: Int32) -> Timestamp? {
        s.optionalInt(column).map { Timestamp(microseconds: $0) }
    }

    /// Values for `INSERT INTO trans_global (<globalColumns minus id>)`.
    static func globalValues(_ t: GlobalTransaction) -> [SQLiteStatement.Value] {
        [
            .text(t.gid), .text(t.transType.rawValue), .text(t.status.rawValue), .text(t.queryPrepared), .text(t.transProtocol),
            time(t.createTime), time(t.updateTime), time(t.finishTime), time(t.rollbackTime),
            .text(TransOptionsJSON.encode(t.options)), .text(t.customData), .int(t.nextCronInterval), time(t.nextCronTime),
            .text(t.owner), .text(t.extData), .text(t.result), .text(t.rollbackReason),
        ]
    }

    static func global(_ s: SQLiteStatement) throws -> GlobalTransaction {
        let gid = s.text(1)
        guard let type = TransType(rawValue: s.text(2)), let status = GlobalStatus(rawValue: s.text(3)) else {
            throw UnreadableRow(gid: gid, problem: "trans_type '\(s.text(2).prefix(64))', status '\(s.text(3).prefix(64))'")
        }
        var t = GlobalTransaction(gid: gid, transType: type, status: status, createTime: timestamp(s, 6) ?? Timestamp(microseconds: 0))
        t.id = s.int(0)
        t.queryPrepared = s.text(4)
        t.transProtocol = s.text(5)
        t.updateTime = timestamp(s, 7) ?? t.createTime
        t.finishTime = timestamp(s, 8)
        t.rollbackTime = timestamp(s, 9)
        t.options = TransOptionsJSON.decode(s.text(10))
        t.customData = s.text(11)
        t.nextCronInterval = s.int(12)
        t.nextCronTime = timestamp(s, 13)
        t.owner = s.text(14)
        t.extData = s.text(15)
        t.result = s.text(16)
        t.rollbackReason = s.text(17)
        return t
    }

    static func branchValues(_ b: Branch) -> [SQLiteStatement.Value] {
        [
            .text(b.gid), .text(b.url), .blob(b.binData), .text(b.branchID), .text(b.op), .text(b.status.rawValue),
            time(b.finishTime), time(b.rollbackTime), time(b.createTime), time(b.updateTime),
        ]
    }

    static func branch(_ s: SQLiteStatement) throws -> Branch {
        guard let status = BranchStatus(rawValue: s.text(6)) else {
            throw UnreadableRow(gid: s.text(1), problem: "branch row \(s.int(0)) has status '\(s.text(6).prefix(64))'")
        }
        var b = Branch(
            gid: s.text(1), url: s.text(2), binData: s.blob(3), branchID: s.text(4), op: s.text(5), status: status,
            createTime: timestamp(s, 9) ?? Timestamp(microseconds: 0))
        b.id = s.int(0)
        b.finishTime = timestamp(s, 7)
        b.rollbackTime = timestamp(s, 8)
        b.updateTime = timestamp(s, 10) ?? b.createTime
        return b
    }

    static func kv(_ s: SQLiteStatement) -> KVRecord {
        var r = KVRecord(cat: s.text(1), key: s.text(2), value: s.text(3), createTime: timestamp(s, 5) ?? Timestamp(microseconds: 0))
        r.id = s.int(0)
        r.version = s.int(4)
        r.updateTime = timestamp(s, 6) ?? r.createTime
        return r
    }
}
