import DTMCore
import Logging
import Synchronization

/// The embedded default store: one SQLite file in WAL mode with `synchronous=FULL`.
///
/// Writes go through one `GroupCommitWriter`; reads use a pool of read-only connections and run in the calling
/// task (a WAL read of a few rows takes microseconds, less than a thread hop would).
public final class SQLiteStore: TransactionStore {
    public let path: String
    private let writer: GroupCommitWriter
    private let readers = Mutex<[SQLiteConnection]>([])
    private let logger: Logger

    /// Opens (creating if needed) the database at `path` and migrates it; `reset` drops everything first (`-r`).
    public init(path: String, reset: Bool = false, logger: Logger = Logger(label: "swift-dtm.sqlite")) throws {
        self.path = path
        self.logger = logger
        let db = try SQLiteConnection(path: path, readOnly: false)
        try db.execute("PRAGMA journal_mode=WAL")
        try db.execute("PRAGMA synchronous=FULL")
        // Checkpoints happen on the writer only; readers never block it.
        try db.execute("PRAGMA wal_autocheckpoint=4000")
        if reset { try SQLiteSchema.reset(db) } else { try SQLiteSchema.migrate(db) }
        self.writer = GroupCommitWriter(connection: db, logger: logger)
        logger.info("sqlite store open", metadata: ["path": .string(path), "schema_version": .stringConvertible(SQLiteSchema.currentVersion)])
    }

    /// Write transactions committed since the store was opened.
    var commitCount: Int { writer.commitCount.load(ordering: .relaxed) }

    /// Finishes queued writes and closes the writer.
    public func close() {
        writer.close()
        readers.withLock { $0.removeAll() }
    }

    // MARK: - Reads

    private func read<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        let db = try readers.withLock { $0.popLast() } ?? {
            let c = try SQLiteConnection(path: path, readOnly: true)
            return c
        }()
        defer { readers.withLock { $0.append(db) } }
        return try body(db)
    }

    public func transaction(gid: String) async throws -> GlobalTransaction? {
        try read { db in
            try db.statement("SELECT \(RowMapping.globalColumns) FROM trans_global WHERE gid = ?1").query([.text(gid)], row: RowMapping.global).first
        }
    }

    public func branches(gid: String) async throws -> [Branch] {
        try read { db in
            try db.statement("SELECT \(RowMapping.branchColumns) FROM trans_branch_op WHERE gid = ?1 ORDER BY id").query([.text(gid)], row: RowMapping.branch)
        }
    }

    public func scan(position: Int64?, limit: Int, filter: TransactionFilter) async throws -> (transactions: [GlobalTransaction], nextPosition: Int64?) {
        let rows = try read { db in
            try db.statement(
                """
                SELECT \(RowMapping.globalColumns) FROM trans_global
                WHERE (?1 IS NULL OR id < ?1) AND (?2 = '' OR status = ?2) AND (?3 = '' OR trans_type = ?3)
                  AND (?4 IS NULL OR create_time >= ?4) AND (?5 IS NULL OR create_time <= ?5)
                ORDER BY id DESC LIMIT ?6
                """
            ).query(
                [position.map { .int($0) } ?? .null, .text(filter.status), .text(filter.transType),
                 RowMapping.time(filter.createTimeStart), RowMapping.time(filter.createTimeEnd), .int(Int64(limit))],
                row: RowMapping.global)
        }
        return (rows, rows.count == limit ? rows.last?.id : nil)
    }

    public func scanKV(cat: String, position: Int64?, limit: Int) async throws -> (records: [KVRecord], nextPosition: Int64?) {
        let rows = try read { db in
            try db.statement("SELECT \(RowMapping.kvColumns) FROM kv WHERE cat = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3")
                .query([.text(cat), position.map { .int($0) } ?? .null, .int(Int64(limit))], row: RowMapping.kv)
        }
        return (rows, rows.count == limit ? rows.last?.id : nil)
    }

    public func findKV(cat: String, key: String) async throws -> [KVRecord] {
        try read { db in
            try db.statement("SELECT \(RowMapping.kvColumns) FROM kv WHERE (?1 = '' OR cat = ?1) AND (?2 = '' OR k = ?2) ORDER BY id")
                .query([.text(cat), .text(key)], row: RowMapping.kv)
        }
    }

    // MARK: - Writes

    public func saveNew(_ transaction: GlobalTransaction, branches: [Branch]) async throws -> GlobalTransaction? {
        try await writer.write { db in
            try db.statement(
                """
                INSERT INTO trans_global (gid, trans_type, status, query_prepared, protocol, create_time, update_time, finish_time,
                  rollback_time, options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) ON CONFLICT(gid) DO NOTHING
                """
            ).run(RowMapping.globalValues(transaction))
            if db.changes == 0 {
                return try db.statement("SELECT \(RowMapping.globalColumns) FROM trans_global WHERE gid = ?1")
                    .query([.text(transaction.gid)], row: RowMapping.global).first
            }
            try Self.insert(branches, db)
            return nil
        }
    }

    private static func insert(_ branches: [Branch], _ db: SQLiteConnection) throws {
        let insert = try db.statement(
            """
            INSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, finish_time, rollback_time, create_time, update_time)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
            """)
        for b in branches {
            do {
                try insert.run(RowMapping.branchValues(b))
            } catch let e as SQLiteError where e.isConstraintViolation {
                throw DTMError.uniqueConflict("branch \(b.branchID)/\(b.op) of \(b.gid) exists")
            }
        }
    }

    /// Throws `storageNotFound` unless the stored status of `gid` is `status`.
    private static func require(_ gid: String, status: GlobalStatus, _ db: SQLiteConnection) throws {
        let found = try db.statement("SELECT status FROM trans_global WHERE gid = ?1").query([.text(gid)]) { $0.text(0) }.first
        guard found == status.rawValue else { throw DTMError.storageNotFound("") }
    }

    public func changeStatus(gid: String, from: GlobalStatus, to: GlobalStatus, change: StatusChange, now: Timestamp) async throws {
        // One UPDATE; it throws only when that UPDATE changed nothing.
        try await writer.write(savepoint: false) { db in
            try db.statement(
                """
                UPDATE trans_global SET status = ?3, update_time = ?4,
                  finish_time = coalesce(?5, finish_time), rollback_time = coalesce(?6, rollback_time),
                  rollback_reason = coalesce(?7, rollback_reason), result = coalesce(?8, result)
                WHERE gid = ?1 AND status = ?2
                """
            ).run([
                .text(gid), .text(from.rawValue), .text(to.rawValue), .int(now.microseconds),
                RowMapping.time(change.finishTime), RowMapping.time(change.rollbackTime),
                change.rollbackReason.map { .text($0) } ?? .null, change.result.map { .text($0) } ?? .null,
            ])
            if db.changes == 0 { throw DTMError.storageNotFound("") }
        }
    }

    public func insertBranches(gid: String, requiring: GlobalStatus, branches: [Branch]) async throws {
        try await writer.write { db in
            try Self.require(gid, status: requiring, db)
            try Self.insert(branches, db)
        }
    }

    public func updateBranches(gid: String, requiring: GlobalStatus, updates: [BranchStatusUpdate], now: Timestamp) async throws {
        // A single update is one UPDATE after a read, throwing only when it changed nothing; more need the savepoint.
        try await writer.write(savepoint: updates.count > 1) { db in
            try Self.require(gid, status: requiring, db)
            let update = try db.statement(
                "UPDATE trans_branch_op SET status = ?4, finish_time = ?5, update_time = ?6 WHERE gid = ?1 AND branch_id = ?2 AND op = ?3")
            for u in updates {
                try update.run([.text(gid), .text(u.branchID), .text(u.op), .text(u.status.rawValue), .int(u.finishTime.microseconds), .int(now.microseconds)])
                if db.changes == 0 { throw DTMError.storageNotFound("branch \(u.branchID)/\(u.op) of \(gid)") }
            }
        }
    }

    public func touchCronTime(gid: String, requiring: GlobalStatus, interval: Int64, nextCronTime: Timestamp, now: Timestamp) async throws {
        try await writer.write(savepoint: false) { db in
            try db.statement(
                "UPDATE trans_global SET next_cron_interval = ?3, next_cron_time = ?4, update_time = ?5 WHERE gid = ?1 AND status = ?2"
            ).run([.text(gid), .text(requiring.rawValue), .int(interval), .int(nextCronTime.microseconds), .int(now.microseconds)])
        }
    }

    public func claimDue(dueBefore: Timestamp, leaseUntil: Timestamp, owner: String, limit: Int, now: Timestamp) async throws -> [GlobalTransaction] {
        try await writer.write { db in
            let ids = try db.statement(
                """
                SELECT id FROM trans_global WHERE status IN ('prepared', 'submitted', 'aborting') AND next_cron_time <= ?1
                ORDER BY next_cron_time LIMIT ?2
                """
            ).query([.int(dueBefore.microseconds), .int(Int64(limit))]) { $0.int(0) }
            guard !ids.isEmpty else { return [] }
            let claim = try db.statement("UPDATE trans_global SET owner = ?2, next_cron_time = ?3, update_time = ?4 WHERE id = ?1")
            let load = try db.statement("SELECT \(RowMapping.globalColumns) FROM trans_global WHERE id = ?1")
            var claimed: [GlobalTransaction] = []
            for id in ids {
                try claim.run([.int(id), .text(owner), .int(leaseUntil.microseconds), .int(now.microseconds)])
                claimed += try load.query([.int(id)], row: RowMapping.global)
            }
            return claimed
        }
    }

    public func resetCronTime(laterThan: Timestamp, limit: Int, now: Timestamp) async throws -> (count: Int, hasRemaining: Bool) {
        try await writer.write { db in
            try db.statement(
                """
                UPDATE trans_global SET next_cron_time = ?2, update_time = ?2 WHERE id IN (
                  SELECT id FROM trans_global WHERE status IN ('prepared', 'submitted', 'aborting') AND next_cron_time > ?1 LIMIT ?3)
                """
            ).run([.int(laterThan.microseconds), .int(now.microseconds), .int(Int64(limit))])
            let count = db.changes
            return (count, count == limit)
        }
    }

    public func resetNextCronTime(gid: String, now: Timestamp) async throws {
        try await writer.write { db in
            try db.statement("UPDATE trans_global SET next_cron_time = ?2, update_time = ?2 WHERE gid = ?1").run([.text(gid), .int(now.microseconds)])
            if db.changes == 0 { throw DTMError.storageNotFound("") }
        }
    }

    public func createKV(_ record: KVRecord) async throws {
        try await writer.write { db in
            try db.statement("INSERT INTO kv (cat, k, v, version, create_time, update_time) VALUES (?1, ?2, ?3, 1, ?4, ?4) ON CONFLICT(cat, k) DO NOTHING")
                .run([.text(record.cat), .text(record.key), .text(record.value), .int(record.createTime.microseconds)])
            if db.changes == 0 { throw DTMError.uniqueConflict("") }
        }
    }

    public func updateKV(_ record: KVRecord, now: Timestamp) async throws {
        try await writer.write { db in
            try db.statement("UPDATE kv SET v = ?3, version = version + 1, update_time = ?5 WHERE cat = ?1 AND k = ?2 AND version = ?4")
                .run([.text(record.cat), .text(record.key), .text(record.value), .int(record.version), .int(now.microseconds)])
            if db.changes == 0 { throw DTMError.storageNotFound("") }
        }
    }

    public func deleteKV(cat: String, key: String) async throws {
        try await writer.write { db in
            try db.statement("DELETE FROM kv WHERE cat = ?1 AND k = ?2").run([.text(cat), .text(key)])
            if db.changes == 0 { throw DTMError.storageNotFound("") }
        }
    }
}
