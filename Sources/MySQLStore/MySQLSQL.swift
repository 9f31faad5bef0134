/// The text of every statement the store runs, for one set of table names. Each is prepared once per connection
/// (`MySQLConnection.run` keeps them) and every value is bound; statements over a variable number of rows are
/// built for a few sizes only (`MySQLSQL.padded`).
struct MySQLSQL: Sendable {
    static let globalColumns = """
        id, gid, trans_type, status, query_prepared, protocol, create_time, update_time, finish_time, rollback_time, \
        options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason
        """
    static let globalInsertColumns = """
        gid, trans_type, status, query_prepared, protocol, create_time, update_time, finish_time, rollback_time, \
        options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason
        """
    static let branchColumns = "id, gid, url, bin_data, branch_id, op, status, finish_time, rollback_time, create_time, update_time"
    static let branchInsertColumns = "gid, url, bin_data, branch_id, op, status, finish_time, rollback_time, create_time, update_time"
    static let kvColumns = "id, cat, k, v, version, create_time, update_time"
    static let unfinished = "('prepared', 'aborting', 'submitted')"

    let t: MySQLTables

    init(_ tables: MySQLTables) { t = tables }

    /// `(?, ?, …)` of `columns` placeholders, `rows` times.
    private static func placeholders(rows: Int, columns: Int) -> String {
        let row = "(" + Array(repeating: "?", count: columns).joined(separator: ", ") + ")"
        return Array(repeating: row, count: rows).joined(separator: ", ")
    }

    /// `count` values as lists of 1, 2, 4, … 64 elements, the last filled up by repeating its last value (a value
    /// twice in an IN list matches the same rows), so that a few statements serve every count.
    static func padded<T>(_ values: [T]) -> [[T]] {
        var lists: [[T]] = []
        var rest = values[...]
        while let last = rest.last {
            let chunk = Array(rest.prefix(64))
            rest = rest.dropFirst(chunk.count)
            var size = 1
            while size < chunk.count { size *= 2 }
            lists.append(chunk + Array(repeating: last, count: size - chunk.count))
        }
        return lists
    }

    private static func list(_ n: Int) -> String { Array(repeating: "?", count: n).joined(separator: ", ") }

    var insertGlobal: String { insertGlobals(1) }
    func insertGlobals(_ n: Int) -> String {
        "INSERT INTO \(t.global) (\(Self.globalInsertColumns)) VALUES \(Self.placeholders(rows: n, columns: 17))"
    }

    /// New branch rows; a row whose key exists is left as it is (DTM's saveNew: ON CONFLICT DO NOTHING).
    func insertBranches(_ n: Int, keepExisting: Bool) -> String {
        let text = "INSERT INTO \(t.branch) (\(Self.branchInsertColumns)) VALUES \(Self.placeholders(rows: n, columns: 10))"
        return keepExisting ? text + " ON DUPLICATE KEY UPDATE id = id" : text
    }

    var globalByGid: String { "SELECT \(Self.globalColumns) FROM \(t.global) WHERE gid = ?" }
    var branchesByGid: String { "SELECT \(Self.branchColumns) FROM \(t.branch) WHERE gid = ? ORDER BY id" }
    var branchKeys: String { "SELECT branch_id, op FROM \(t.branch) WHERE gid = ?" }
    /// Waits for a status change in flight and sees its outcome (as DTM's FOR UPDATE), while concurrent branches of
    /// one transaction do not wait for each other.
    var globalInStatus: String { "SELECT id FROM \(t.global) WHERE gid = ? AND status = ? LOCK IN SHARE MODE" }
    /// One branch's new status, if the transaction is in the given status: one statement that reads the global row
    /// with a shared lock (as `globalInStatus`) and updates the branch row.
    var updateBranchInStatus: String {
        """
        UPDATE \(t.branch) b JOIN \(t.global) g ON g.gid = b.gid
        SET b.status = ?, b.finish_time = ?, b.update_time = ?
        WHERE b.gid = ? AND b.branch_id = ? AND b.op = ? AND g.status = ?
        """
    }
    var globalStatus: String { "SELECT id FROM \(t.global) WHERE gid = ? AND status = ?" }

    var changeStatus: String {
        """
        UPDATE \(t.global) SET status = ?, update_time = ?, finish_time = COALESCE(?, finish_time),
          rollback_time = COALESCE(?, rollback_time), rollback_reason = COALESCE(?, rollback_reason), result = COALESCE(?, result)
        WHERE gid = ? AND status = ?
        """
    }
    /// `changeStatus` with one branch update in one statement: both rows or neither.
    var changeStatusAndBranch: String {
        """
        UPDATE \(t.global) g JOIN \(t.branch) b ON b.gid = g.gid AND b.branch_id = ? AND b.op = ?
        SET g.status = ?, g.update_time = ?, g.finish_time = COALESCE(?, g.finish_time),
          g.rollback_time = COALESCE(?, g.rollback_time), g.rollback_reason = COALESCE(?, g.rollback_reason),
          g.result = COALESCE(?, g.result), b.status = ?, b.finish_time = ?, b.update_time = ?
        WHERE g.gid = ? AND g.status = ?
        """
    }
    var updateBranch: String { "UPDATE \(t.branch) SET status = ?, finish_time = ?, update_time = ? WHERE gid = ? AND branch_id = ? AND op = ?" }
    var touchCronTime: String {
        "UPDATE \(t.global) SET next_cron_interval = ?, next_cron_time = ?, update_time = ? WHERE gid = ? AND status = ?"
    }

    /// SKIP LOCKED: coordinators claiming at once take different rows instead of waiting for each other.
    var claimDue: String {
        "SELECT \(Self.globalColumns) FROM \(t.global) WHERE due_at <= ? ORDER BY due_at LIMIT ? FOR UPDATE SKIP LOCKED"
    }
    func lease(_ n: Int) -> String { "UPDATE \(t.global) SET owner = ?, next_cron_time = ?, update_time = ? WHERE id IN (\(Self.list(n)))" }
    var park: String { "UPDATE \(t.global) SET next_cron_time = ? WHERE id = ?" }
    var renewLease: String {
        """
        UPDATE \(t.global) SET owner = ?, next_cron_time = ?, update_time = ?
        WHERE gid = ? AND status IN \(Self.unfinished)
          AND (owner = ? OR owner = '' OR next_cron_time IS NULL OR next_cron_time <= ?)
        """
    }
    var resetCronTime: String {
        "UPDATE \(t.global) SET next_cron_time = ?, update_time = ? WHERE status IN \(Self.unfinished) AND next_cron_time > ? LIMIT ?"
    }
    var resetNextCronTime: String { "UPDATE \(t.global) SET next_cron_time = ?, update_time = ? WHERE gid = ?" }
    var recordError: String { "UPDATE \(t.global) SET last_error = ? WHERE gid = ?" }

    var finishedBefore: String {
        "SELECT id, gid FROM \(t.global) WHERE finished_at < ? ORDER BY finished_at LIMIT ? FOR UPDATE SKIP LOCKED"
    }
    func deleteGlobals(_ n: Int) -> String { "DELETE FROM \(t.global) WHERE id IN (\(Self.list(n)))" }
    func deleteBranches(_ n: Int) -> String { "DELETE FROM \(t.branch) WHERE gid IN (\(Self.list(n)))" }

    /// Each count over at most `cap` index entries.
    var backlog: String {
        let g = t.global
        return """
            SELECT
              (SELECT count(*) FROM (SELECT 1 FROM \(g) WHERE status = 'prepared' LIMIT ?) p),
              (SELECT count(*) FROM (SELECT 1 FROM \(g) WHERE status = 'submitted' LIMIT ?) s),
              (SELECT count(*) FROM (SELECT 1 FROM \(g) WHERE status = 'aborting' LIMIT ?) a),
              (SELECT count(*) FROM (SELECT 1 FROM \(g) WHERE due_at <= ? LIMIT ?) d),
              (SELECT count(*) FROM (SELECT 1 FROM \(g) WHERE due_at < ? LIMIT ?) o)
            """
    }
    var unfinishedOldest: String {
        "SELECT \(Self.globalColumns), last_error FROM \(t.global) WHERE status IN \(Self.unfinished) ORDER BY create_time, id LIMIT ?"
    }
    var scan: String {
        """
        SELECT \(Self.globalColumns) FROM \(t.global)
        WHERE id < ? AND (? = '' OR status = ?) AND (? = '' OR trans_type = ?)
          AND (? IS NULL OR create_time >= ?) AND (? IS NULL OR create_time <= ?)
        ORDER BY id DESC LIMIT ?
        """
    }

    var scanKV: String { "SELECT \(Self.kvColumns) FROM \(t.kv) WHERE cat = ? AND id < ? ORDER BY id DESC LIMIT ?" }
    var findKV: String { "SELECT \(Self.kvColumns) FROM \(t.kv) WHERE (? = '' OR cat = ?) AND (? = '' OR k = ?) ORDER BY id" }
    var createKV: String { "INSERT INTO \(t.kv) (cat, k, v, version, create_time, update_time) VALUES (?, ?, ?, 1, ?, ?)" }
    var updateKV: String { "UPDATE \(t.kv) SET v = ?, version = version + 1, update_time = ? WHERE cat = ? AND k = ? AND version = ?" }
    var deleteKV: String { "DELETE FROM \(t.kv) WHERE cat = ? AND k = ?" }
}
