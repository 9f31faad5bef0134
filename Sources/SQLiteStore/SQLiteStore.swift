package import DTMCore
package import Logging
import Synchronization

/// The embedded default store: one SQLite file in WAL mode with `synchronous=FULL`.
///
/// Writes go through one `GroupCommitWriter`; reads use a pool of read-only connections and run in the calling
/// task (a WAL read of a few rows takes microseconds, less than a thread hop would).
package final class SQLiteStore: TransactionStore {
    package let path: String
    private let writer: GroupCommitWriter
    private let readers = Mutex<[SQLiteConnection]>([])
    private let logger: Logger

    /// Opens (creating if needed) the database at `path` and migrates it; `reset` drops everything first (`-r`).
    package init(path: String, reset: Bool = false, logger: Logger) throws {
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
    package func close() {
        writer.close()
        readers.withLock { $0.removeAll() }
    }

    // MARK: - Reads

    private func read<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        let db =
            try readers.withLock { $0.popLast() }
            ?? {
                let c = try SQLiteConnection(path: path, readOnly: true)
                return c
            }()
        defer { readers.withLock { $0.append(db) } }
        return try body(db)
    }

    package func transaction(gid: String) async throws -> GlobalTransaction? {
        try read { db in try db.statement(.globalByGid).query([.text(gid)], row: RowMapping.global).first }
    }

    package func branches(gid: String) async throws -> [Branch] {
        try read { db in try db.statement(.branchesByGid).query([.text(gid)], row: RowMapping.branch) }
    }

    /// A row the model cannot read is left out of the page (and logged), so that one such row does not make every
    /// page that would hold it fail; the page still ends where the rows read ended.
    package func scan(position: Int64?, limit: Int, filter: TransactionFilter) async throws -> (transactions: [GlobalTransaction], nextPosition: Int64?) {
        let rows: [(id: Int64, transaction: GlobalTransaction?)] = try read { db in
            try db.statement(.scan).query(
                [
                    position.map { .int($0) } ?? .null, .text(filter.status), .text(filter.transType),
                    RowMapping.time(filter.createTimeStart), RowMapping.time(filter.createTimeEnd), .int(Int64(limit)),
                ]
            ) { s in
                do {
                    return (s.int(0), try RowMapping.global(s))
                } catch let unreadable as UnreadableRow {
                    logger.warning(
                        "stored transaction left out of a listing", metadata: ["gid": .string(unreadable.gid), "error": .string(unreadable.problem)])
                    return (s.int(0), nil)
                }
            }
        }
        return (rows.compactMap(\.transaction), rows.count == limit ? rows.last?.id : nil)
    }

    package func scanKV(cat: String, position: Int64?, limit: Int) async throws -> (records: [KVRecord], nextPosition: Int64?) {
        let rows = try read { db in
            try db.statement(.scanKV).query([.text(cat), position.map { .int($0) } ?? .null, .int(Int64(limit))], row: RowMapping.kv)
        }
        return (rows, rows.count == limit ? rows.last?.id : nil)
    }

    package func backlog(now: Timestamp, overdueBefore: Timestamp, cap: Int) async throws -> Backlog {
        try read { db in
            let count = { (statement: SQL, values: [SQLiteStatement.Value]) in
                Int(try db.statement(statement).query(values) { $0.int(0) }.first ?? 0)
            }
            var b = Backlog()
            b.prepared = try count(.countStatus, [.text(GlobalStatus.prepared.rawValue), .int(Int64(cap))])
            b.submitted = try count(.countStatus, [.text(GlobalStatus.submitted.rawValue), .int(Int64(cap))])
            b.aborting = try count(.countStatus, [.text(GlobalStatus.aborting.rawValue), .int(Int64(cap))])
            b.due = try count(.countDue, [.int(now.microseconds), .int(Int64(cap))])
            b.overdue = try count(.countDue, [.int(Saturating.subtract(overdueBefore.microseconds, 1)), .int(Int64(cap))])
            return b
        }
    }

    package func findKV(cat: String, key: String) async throws -> [KVRecord] {
        try read { db in try db.statement(.findKV).query([.text(cat), .text(key)], row: RowMapping.kv) }
    }

    // MARK: - Writes
    //
    // Row values are built before a job is queued, in the caller's task: the writer thread is the one serial
    // part of the store, so it only binds and steps.

    package func saveNew(_ transaction: GlobalTransaction, branches: [Branch]) async throws -> GlobalTransaction? {
        let global = RowMapping.globalValues(transaction)
        let rows = branches.map { (RowMapping.branchValues($0), $0) }
        let gid = transaction.gid
        let bytes = RowMapping.byteCount(global) + rows.reduce(0) { $0 + RowMapping.byteCount($1.0) }
        return try await writer.write(bytes: bytes) { db in
            try db.statement(.insertGlobal).run(global)
            if db.changes == 0 {
                return try db.statement(.globalByGid).query([.text(gid)], row: RowMapping.global).first
            }
            try Self.insert(rows, db)
            return nil
        }
    }

    private static func insert(_ rows: [([SQLiteStatement.Value], Branch)], _ db: SQLiteConnection) throws {
        let insert = try db.statement(.insertBranch)
        for (values, b) in rows {
            do {
                try insert.run(values)
            } catch let e as SQLiteError where e.isConstraintViolation {
                throw DTMError.uniqueConflict("branch \(b.branchID)/\(b.op) of \(b.gid) exists")
            }
        }
    }

    /// Throws `storageNotFound` unless the stored status of `gid` is `status`.
    private static func require(_ gid: String, status: GlobalStatus, _ db: SQLiteConnection) throws {
        let found = try db.statement(.statusByGid).query([.text(gid)]) { $0.text(0) }.first
        guard found == status.rawValue else { throw DTMError.storageNotFound("") }
    }

    /// Applies branch status updates; `storageNotFound` if one names no row.
    private static func update(_ gid: String, _ updates: [BranchStatusUpdate], now: Timestamp, _ db: SQLiteConnection) throws {
        guard !updates.isEmpty else { return }
        let update = try db.statement(.updateBranch)
        for u in updates {
            try update.run([.text(gid), .text(u.branchID), .text(u.op), .text(u.status.rawValue), .int(u.finishTime.microseconds), .int(now.microseconds)])
            if db.changes == 0 { throw DTMError.storageNotFound("branch \(u.branchID)/\(u.op) of \(gid)") }
        }
    }

    package func changeStatus(
        gid: String, from: GlobalStatus, to: GlobalStatus, change: StatusChange, branchUpdates: [BranchStatusUpdate], now: Timestamp,
        durability: WriteDurability
    ) async throws {
        let values: [SQLiteStatement.Value] = [
            .text(gid), .text(from.rawValue), .text(to.rawValue), .int(now.microseconds),
            RowMapping.time(change.finishTime), RowMapping.time(change.rollbackTime),
            change.rollbackReason.map { .text($0) } ?? .null, change.result.map { .text($0) } ?? .null,
        ]
        // Alone, it is one UPDATE that throws only when it changed nothing: no savepoint needed.
        try await writer.write(savepoint: !branchUpdates.isEmpty, durable: durability == .durable) { db in
            try db.statement(.changeStatus).run(values)
            if db.changes == 0 { throw DTMError.storageNotFound("") }
            try Self.update(gid, branchUpdates, now: now, db)
        }
    }

    package func insertBranches(gid: String, requiring: GlobalStatus, branches: [Branch]) async throws {
        let rows = branches.map { (RowMapping.branchValues($0), $0) }
        try await writer.write(bytes: rows.reduce(0) { $0 + RowMapping.byteCount($1.0) }) { db in
            try Self.require(gid, status: requiring, db)
            try Self.insert(rows, db)
        }
    }

    package func updateBranches(gid: String, requiring: GlobalStatus, updates: [BranchStatusUpdate], now: Timestamp, durability: WriteDurability) async throws {
        // A single update is one UPDATE after a read, throwing only when it changed nothing; more need the savepoint.
        try await writer.write(savepoint: updates.count > 1, durable: durability == .durable) { db in
            try Self.require(gid, status: requiring, db)
            try Self.update(gid, updates, now: now, db)
        }
    }

    package func touchCronTime(
        gid: String, requiring: GlobalStatus, interval: Int64, nextCronTime: Timestamp, branchUpdates: [BranchStatusUpdate],
        now: Timestamp, durability: WriteDurability
    ) async throws {
        let values: [SQLiteStatement.Value] = [
            .text(gid), .text(requiring.rawValue), .int(interval), .int(nextCronTime.microseconds), .int(now.microseconds),
        ]
        try await writer.write(savepoint: !branchUpdates.isEmpty, durable: durability == .durable) { db in
            try db.statement(.touchCronTime).run(values)
            guard !branchUpdates.isEmpty else { return }
            if db.changes == 0 { throw DTMError.storageNotFound("") }
            try Self.update(gid, branchUpdates, now: now, db)
        }
    }

    /// A due row the model cannot read is not returned: it is set aside for `unreadableRowPause` and logged, so
    /// that it neither fails every claim nor comes back at every pass.
    package func claimDue(dueBefore: Timestamp, leaseUntil: Timestamp, owner: String, limit: Int, now: Timestamp) async throws -> [GlobalTransaction] {
        let logger = self.logger
        let parkedUntil = now.adding(seconds: Self.unreadableRowPause)
        return try await writer.write { db in
            let ids = try db.statement(.dueIDs).query([.int(dueBefore.microseconds), .int(Int64(limit))]) { $0.int(0) }
            guard !ids.isEmpty else { return [] }
            let claim = try db.statement(.claim)
            let load = try db.statement(.globalByID)
            var claimed: [GlobalTransaction] = []
            for id in ids {
                do {
                    // Read first, so that an unreadable row is found before it is leased.
                    for var transaction in try load.query([.int(id)], row: RowMapping.global) {
                        try claim.run([.int(id), .text(owner), .int(leaseUntil.microseconds), .int(now.microseconds)])
                        transaction.owner = owner
                        transaction.nextCronTime = leaseUntil
                        transaction.updateTime = now
                        claimed.append(transaction)
                    }
                } catch let unreadable as UnreadableRow {
                    try claim.run([.int(id), .text(owner), .int(parkedUntil.microseconds), .int(now.microseconds)])
                    logger.error(
                        "stored transaction cannot be processed; set aside",
                        metadata: [
                            "gid": .string(unreadable.gid), "error": .string(unreadable.problem),
                            "seconds": .stringConvertible(Self.unreadableRowPause),
                        ])
                }
            }
            return claimed
        }
    }

    /// How long a row that cannot be read is left alone before it is looked at again, seconds.
    static let unreadableRowPause: Double = 3600

    package func resetCronTime(laterThan: Timestamp, limit: Int, now: Timestamp) async throws -> (count: Int, hasRemaining: Bool) {
        try await writer.write { db in
            try db.statement(.resetCronTime).run([.int(laterThan.microseconds), .int(now.microseconds), .int(Int64(limit))])
            let count = db.changes
            return (count, count == limit)
        }
    }

    package func renewLease(gid: String, owner: String, until: Timestamp, now: Timestamp) async throws -> Bool {
        try await writer.write { db in
            try db.statement(.renewLease).run([.text(gid), .text(owner), .int(until.microseconds), .int(now.microseconds)])
            return db.changes > 0
        }
    }

    package func resetNextCronTime(gid: String, now: Timestamp) async throws {
        try await writer.write { db in
            try db.statement(.resetNextCronTime).run([.text(gid), .int(now.microseconds)])
            if db.changes == 0 { throw DTMError.storageNotFound("") }
        }
    }

    package func recordError(gid: String, message: String) async throws {
        try await writer.write { db in try db.statement(.recordError).run([.text(gid), .text(message)]) }
    }

    /// A row the model cannot read is left out (the cron loop sets it aside and logs it).
    package func unfinishedOldest(limit: Int) async throws -> [(transaction: GlobalTransaction, lastError: String)] {
        try read { db in
            try db.statement(.unfinishedOldest).query([.int(Int64(limit))]) { s -> (GlobalTransaction, String)? in
                guard let t = try? RowMapping.global(s) else { return nil }
                return (t, s.text(18))
            }.compactMap { $0 }.map { (transaction: $0.0, lastError: $0.1) }
        }
    }

    package func deleteFinished(before: Timestamp, limit: Int) async throws -> Int {
        try await writer.write { db in
            let rows = try db.statement(.finishedIDs).query([.int(before.microseconds), .int(Int64(limit))]) { ($0.int(0), $0.text(1)) }
            let deleteGlobal = try db.statement(.deleteGlobal)
            let deleteBranches = try db.statement(.deleteBranches)
            for (id, gid) in rows {
                try deleteGlobal.run([.int(id)])
                try deleteBranches.run([.text(gid)])
            }
            return rows.count
        }
    }

    package func createKV(_ record: KVRecord) async throws {
        try await writer.write { db in
            try db.statement(.createKV)
                .run([.text(record.cat), .text(record.key), .text(record.value), .int(record.createTime.microseconds)])
            if db.changes == 0 { throw DTMError.uniqueConflict("") }
        }
    }

    package func updateKV(_ record: KVRecord, now: Timestamp) async throws {
        try await writer.write { db in
            try db.statement(.updateKV)
                .run([.text(record.cat), .text(record.key), .text(record.value), .int(record.version), .int(now.microseconds)])
            if db.changes == 0 { throw DTMError.storageNotFound("") }
        }
    }

    package func deleteKV(cat: String, key: String) async throws {
        try await writer.write { db in
            try db.statement(.deleteKV).run([.text(cat), .text(key)])
            if db.changes == 0 { throw DTMError.storageNotFound("") }
        }
    }
}
