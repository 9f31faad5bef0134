import DTMCore
import JSONSupport

/// Model ⇄ row conversion for the PostgreSQL store (column order of `PostgresSQL.globalColumns` and friends).
enum PostgresRows {
    /// A transaction's row (the columns of `PostgresMergeable.Kind.saveNew`, in `saveNew`'s order).
    static func globalCells(_ t: GlobalTransaction) -> [PostgresDatum] {
        [
            .text(t.gid), .text(t.transType.rawValue), .text(t.status.rawValue), .text(t.queryPrepared), .text(t.transProtocol),
            .at(t.createTime), .at(t.updateTime), .at(t.finishTime), .at(t.rollbackTime), .text(TransOptionsJSON.encode(t.options)),
            .text(t.customData), .int(Int64(Int32(clamping: t.nextCronInterval))), .at(t.nextCronTime.map(\.wholeSecondUp)), .text(t.owner),
            .text(t.extData),
            .text(t.result), .text(t.rollbackReason),
        ]
    }

    /// One branch row (the child columns of `PostgresMergeable.Kind.saveNew`).
    static func branchCells(_ b: Branch) -> [PostgresDatum] {
        [
            .text(b.gid), .text(b.url), .bytes(b.binData), .text(b.branchID), .text(b.op), .text(b.status.rawValue), .at(b.finishTime),
            .at(b.rollbackTime), .at(b.createTime), .at(b.updateTime),
        ]
    }

    /// Nine arrays of new branch rows (url, bin_data, branch_id, op, status, finish, rollback, create, update).
    static func branchArrays(_ branches: [Branch]) -> [PostgresValue] {
        [
            .texts(branches.map(\.url)), .byteArrays(branches.map(\.binData)), .texts(branches.map(\.branchID)), .texts(branches.map(\.op)),
            .texts(branches.map(\.status.rawValue)), .times(branches.map(\.finishTime)), .times(branches.map(\.rollbackTime)),
            .times(branches.map { $0.createTime }), .times(branches.map { $0.updateTime }),
        ]
    }

    /// Four arrays of branch status updates (branch_id, op, status, finish_time).
    static func updateArrays(_ updates: [BranchStatusUpdate]) -> [PostgresValue] {
        [.texts(updates.map(\.branchID)), .texts(updates.map(\.op)), .texts(updates.map(\.status.rawValue)), .times(updates.map { $0.finishTime })]
    }

    static func global(_ c: PostgresColumns) throws -> GlobalTransaction {
        let gid = try c.text(1)
        let typeText = try c.text(2)
        let statusText = try c.text(3)
        guard let type = TransType(rawValue: typeText), let status = GlobalStatus(rawValue: statusText) else {
            throw UnreadableRow(gid: gid, problem: "trans_type '\(typeText.prefix(64))', status '\(statusText.prefix(64))'")
        }
        var t = GlobalTransaction(gid: gid, transType: type, status: status, createTime: try c.time(6) ?? Timestamp(microseconds: 0))
        t.id = try c.int(0)
        t.queryPrepared = try c.text(4)
        t.transProtocol = try c.text(5)
        t.updateTime = try c.time(7) ?? t.createTime
        t.finishTime = try c.time(8)
        t.rollbackTime = try c.time(9)
        t.options = TransOptionsJSON.decode(try c.text(10))
        t.customData = try c.text(11)
        t.nextCronInterval = try c.int(12)
        t.nextCronTime = try c.time(13)
        t.owner = try c.text(14)
        t.extData = try c.text(15)
        t.result = try c.text(16)
        t.rollbackReason = try c.text(17)
        return t
    }

    static func branch(_ c: PostgresColumns) throws -> Branch {
        let statusText = try c.text(6)
        guard let status = BranchStatus(rawValue: statusText) else {
            throw UnreadableRow(gid: c.gid, problem: "branch row \(try c.int(0)) has status '\(statusText.prefix(64))'")
        }
        var b = Branch(
            gid: try c.text(1), url: try c.text(2), binData: try c.bytes(3), branchID: try c.text(4), op: try c.text(5), status: status,
            createTime: try c.time(9) ?? Timestamp(microseconds: 0))
        b.id = try c.int(0)
        b.finishTime = try c.time(7)
        b.rollbackTime = try c.time(8)
        b.updateTime = try c.time(10) ?? b.createTime
        return b
    }

    static func kv(_ c: PostgresColumns) throws -> KVRecord {
        var r = KVRecord(cat: try c.text(1), key: try c.text(2), value: try c.text(3), createTime: try c.time(5) ?? Timestamp(microseconds: 0))
        r.id = try c.int(0)
        r.version = try c.int(4)
        r.updateTime = try c.time(6) ?? r.createTime
        return r
    }
}

/// DTM's column widths (`varchar(n)` counts characters). A value that does not fit is refused before it reaches
/// the server, naming the field, instead of failing with PostgreSQL's "value too long for type character varying".
enum PostgresColumnLimits {
    static func check(_ t: GlobalTransaction) throws {
        try fits("gid", t.gid, 128)
        try fits("trans_type", t.transType.rawValue, 45)
        try fits("query_prepared", t.queryPrepared, 1024)
        try fits("protocol", t.transProtocol, 45)
        try fits("options", TransOptionsJSON.encode(t.options), 1024)
        try fits("custom_data", t.customData, 1024)
        try fits("owner", t.owner, 128)
        try fits("result", t.result, 1024)
        try fits("rollback_reason", t.rollbackReason, 1024)
        try fits("ext_data", t.extData, .max)
    }

    static func check(_ branches: [Branch]) throws {
        for b in branches {
            try fits("branch url", b.url, 1024)
            try fits("branch_id", b.branchID, 128)
            try fits("op", b.op, 45)
        }
    }

    static func check(_ record: KVRecord) throws {
        try fits("cat", record.cat, 45)
        try fits("key", record.key, 128)
        try fits("value", record.value, .max)
    }

    /// PostgreSQL text holds no NUL character.
    static func fits(_ field: String, _ value: String, _ limit: Int) throws {
        if value.utf8.contains(0) { throw DTMError.invalidArgument("\(field) contains a NUL character, which PostgreSQL text cannot hold") }
        // Characters are at most as many as UTF-8 bytes: count them only when the bytes exceed the limit.
        guard value.utf8.count > limit, value.unicodeScalars.count > limit else { return }
        throw DTMError.invalidArgument("\(field) is longer than \(limit) characters, the width of its column in DTM's PostgreSQL schema")
    }

    /// A reason the server writes itself (from a branch's answer) is made to fit rather than refused.
    static func fitted(_ value: String, _ limit: Int) -> String {
        var v = value
        if v.utf8.contains(0) { v = String(String.UnicodeScalarView(v.unicodeScalars.filter { $0 != "\u{0}" })) }
        guard v.utf8.count > limit, v.unicodeScalars.count > limit else { return v }
        return String(String.UnicodeScalarView(v.unicodeScalars.prefix(limit)))
    }
}
