package import DTMCore
package import Logging
import PostgresNIO
import Synchronization

/// DTM's PostgreSQL store: several coordinators share one database (spec §11, DTM's schema).
///
/// Writes go through `PostgresWriter` (group commit on a few connections); reads take one of a few reader
/// connections in turn. Connections are long-lived: no call checks one out of a pool.
package final class PostgresStore: TransactionStore {
    package let configuration: PostgresStoreConfiguration
    private let writer: PostgresWriter
    private let readers: [PostgresLink]
    private let writerLinks: [PostgresLink]
    private let nextReader = Atomic<Int>(0)
    private let logger: Logger

    private init(configuration: PostgresStoreConfiguration, writerLinks: [PostgresLink], readers: [PostgresLink], logger: Logger) {
        self.configuration = configuration
        self.writerLinks = writerLinks
        self.readers = readers
        self.writer = PostgresWriter(links: writerLinks.filter { !$0.ordered }, orderedLink: writerLinks.first(where: \.ordered), logger: logger)
        self.logger = logger
    }

    /// Connects (waiting up to `startupWait` for the database to accept connections), migrates the schema or, with
    /// `reset`, drops and recreates it (`-r`), and opens the connections.
    package static func open(_ configuration: PostgresStoreConfiguration, reset: Bool = false, logger: Logger) async throws -> PostgresStore {
        guard PostgresTables.isSchemaName(configuration.schema) else {
            throw PostgresStoreError.server(sqlState: "3F000", message: "Store.Schema '\(configuration.schema.prefix(64))' is not a schema name")
        }
        let sql = PostgresSQL(configuration.tables)
        var settings = PostgresLink.Settings(configuration: configuration.connection)
        settings.statementTimeout = configuration.statementTimeout
        settings.maxLifetime = configuration.connectionLifetime
        let (writers, readers) = configuration.connectionCounts
        // With two writers or more, the last is for ordered writes.
        let links = (0..<(writers + readers)).map { id in
            PostgresLink(settings: settings, sql: sql, id: id, logger: logger, ordered: writers >= 2 && id == writers - 1)
        }
        do {
            try await waitForDatabase(links[0], configuration, logger: logger)
            try await PostgresMigrator(link: links[0], tables: configuration.tables, schema: configuration.schema, logger: logger)
                .run(reset: reset)
        } catch {
            for link in links { await link.close() }
            throw error
        }
        logger.info(
            "postgres store open",
            metadata: [
                "host": .string(configuration.host), "port": .stringConvertible(configuration.port), "db": .string(configuration.database),
                "schema": .string(configuration.schema), "writers": .stringConvertible(writers), "readers": .stringConvertible(readers),
                "schema_version": .stringConvertible(PostgresSchema.currentVersion),
            ])
        return PostgresStore(
            configuration: configuration, writerLinks: Array(links.prefix(writers)), readers: Array(links.suffix(readers)), logger: logger)
    }

    private static func waitForDatabase(_ link: PostgresLink, _ configuration: PostgresStoreConfiguration, logger: Logger) async throws {
        let deadline = ContinuousClock.now + configuration.startupWait
        while true {
            do {
                _ = try await link.connection()
                return
            } catch let e as PostgresStoreError {
                if e.isFatalAtStartup || ContinuousClock.now >= deadline { throw e }
                logger.notice("waiting for the database", metadata: ["error": .string(e.description)])
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// Write transactions committed since the store was opened.
    package var commitCount: Int { writer.commits.load(ordering: .relaxed) }

    package func close() async {
        await writer.close()
        for link in writerLinks + readers { await link.close() }
    }

    // MARK: - Reads

    private func read(_ statement: PostgresStatement, _ values: [PostgresValue]) async throws -> [PostgresRow] {
        let i = nextReader.wrappingAdd(1, ordering: .relaxed).oldValue
        return try await readers[Int(UInt(bitPattern: i) % UInt(readers.count))].run(statement, values)
    }

    /// Keys with a NUL cannot be stored (text holds none), so nothing matches them; asked anyway, the server
    /// would refuse the parameter.
    private static func unmatchable(_ keys: String...) -> Bool { keys.contains { $0.utf8.contains(0) } }

    package func transaction(gid: String) async throws -> GlobalTransaction? {
        if Self.unmatchable(gid) { return nil }
        return try await read(.globalByGid, [.text(gid)]).first.map { try PostgresRows.global(PostgresColumns($0, gidColumn: 1)) }
    }

    package func branches(gid: String) async throws -> [Branch] {
        if Self.unmatchable(gid) { return [] }
        return try await read(.branchesByGid, [.text(gid)]).map { try PostgresRows.branch(PostgresColumns($0, gidColumn: 1)) }
    }

    /// A row the model cannot read is left out of the page (and logged); the page still ends where the rows ended.
    package func scan(position: Int64?, limit: Int, filter: TransactionFilter) async throws -> (transactions: [GlobalTransaction], nextPosition: Int64?) {
        if Self.unmatchable(filter.status, filter.transType) { return ([], nil) }
        let rows = try await read(
            .scan,
            [
                .int(position ?? .max), .text(filter.status), .text(filter.transType), .time(filter.createTimeStart), .time(filter.createTimeEnd),
                .int(Int64(limit)),
            ])
        var page: [GlobalTransaction] = []
        var lastID: Int64?
        for row in rows {
            let columns = PostgresColumns(row, gidColumn: 1)
            lastID = try columns.int(0)
            do {
                page.append(try PostgresRows.global(columns))
            } catch let unreadable as UnreadableRow {
                logger.warning("stored transaction left out of a listing", metadata: ["gid": .string(unreadable.gid), "error": .string(unreadable.problem)])
            }
        }
        return (page, rows.count == limit ? lastID : nil)
    }

    package func scanKV(cat: String, position: Int64?, limit: Int) async throws -> (records: [KVRecord], nextPosition: Int64?) {
        if Self.unmatchable(cat) { return ([], nil) }
        let records = try await read(.scanKV, [.text(cat), .int(position ?? .max), .int(Int64(limit))]).map { try PostgresRows.kv(PostgresColumns($0)) }
        return (records, records.count == limit ? records.last?.id : nil)
    }

    package func backlog(now: Timestamp, overdueBefore: Timestamp, cap: Int) async throws -> Backlog {
        let c = try Self.counts(try await read(.backlog, [.time(now), .time(overdueBefore), .int(Int64(cap))]))
        var b = Backlog()
        b.prepared = Int(try c.int(0))
        b.submitted = Int(try c.int(1))
        b.aborting = Int(try c.int(2))
        b.due = Int(try c.int(3))
        b.overdue = Int(try c.int(4))
        return b
    }

    package func findKV(cat: String, key: String) async throws -> [KVRecord] {
        if Self.unmatchable(cat, key) { return [] }
        return try await read(.findKV, [.text(cat), .text(key)]).map { try PostgresRows.kv(PostgresColumns($0)) }
    }

    // MARK: - Writes

    /// The first row's columns as integers (the counts a write statement returns).
    private static func counts(_ rows: [PostgresRow]) throws -> PostgresColumns {
        guard let row = rows.first else { throw PostgresStoreError.server(sqlState: "XX000", message: "statement returned no row") }
        return PostgresColumns(row)
    }

    /// The gid of a saveNew is taken: the caller reads the stored transaction.
    private struct GidExists: Error {}

    package func saveNew(_ transaction: GlobalTransaction, branches: [Branch]) async throws -> GlobalTransaction? {
        try PostgresColumnLimits.check(transaction)
        try PostgresColumnLimits.check(branches)
        let merge = PostgresMergeable(
            kind: .saveNew, gid: transaction.gid, columns: PostgresRows.globalCells(transaction),
            children: branches.map { PostgresRows.branchCells($0) }, verdict: { inserted, _ in inserted ? nil : GidExists() })
        do {
            // The solo statement's values are built only if the write runs alone.
            try await writer.write(bytes: merge.byteCount, merge: merge) { link in
                let values = PostgresValue.of(merge) + PostgresRows.branchArrays(branches)
                if try Self.counts(try await link.run(.saveNew, values)).int(0) != 1 { throw GidExists() }
            }
            return nil
        } catch is GidExists {
            guard let stored = try await self.transaction(gid: transaction.gid) else {
                throw DTMError.storageNotFound("gid \(transaction.gid) exists but cannot be read")
            }
            return stored
        }
    }

    package func changeStatus(
        gid: String, from: GlobalStatus, to: GlobalStatus, change: StatusChange, branchUpdates: [BranchStatusUpdate], now: Timestamp,
        durability: WriteDurability
    ) async throws {
        if Self.unmatchable(gid) { throw DTMError.storageNotFound("") }
        if let result = change.result { try PostgresColumnLimits.fits("result", result, 1024) }
        let merge = PostgresMergeable(
            kind: .changeStatus, gid: gid,
            columns: [
                .text(gid), .text(from.rawValue), .text(to.rawValue), .at(now),
                .at(change.finishTime), .at(change.rollbackTime),
                change.rollbackReason.map { .text(PostgresColumnLimits.fitted($0, 1024)) } ?? .null, change.result.map { .text($0) } ?? .null,
            ], children: [], verdict: { changed, _ in changed ? nil : DTMError.storageNotFound("") })
        let durable = durability == .durable
        if branchUpdates.isEmpty {
            try await writer.write(merge: merge, durable: durable) { link in
                if try await link.run(.changeStatusOnly, PostgresValue.of(merge)).isEmpty { throw DTMError.storageNotFound("") }
            }
            return
        }
        let withUpdates = PostgresValue.of(merge) + PostgresRows.updateArrays(branchUpdates)
        try await writer.write(durable: durable) { link in
            let c = try Self.counts(try await link.run(.changeStatus, withUpdates))
            if try c.int(0) == 0 { throw DTMError.storageNotFound(try Self.missing(c, gid)) }
        }
    }

    /// The "branch x/op of gid" a statement found missing, or "" (the status did not match).
    private static func missing(_ c: PostgresColumns, _ gid: String) throws -> String {
        let name = try c.text(1)
        return name.isEmpty ? "" : "branch \(name) of \(gid)"
    }

    package func insertBranches(gid: String, requiring: GlobalStatus, branches: [Branch]) async throws {
        if Self.unmatchable(gid) { throw DTMError.storageNotFound("") }
        try PostgresColumnLimits.check(branches)
        let values = [.text(gid), .text(requiring.rawValue)] + PostgresRows.branchArrays(branches)
        do {
            try await writer.write(bytes: values.reduce(0) { $0 + $1.byteCount }) { link in
                let c = try Self.counts(try await link.run(.insertBranches, values))
                if try c.int(0) == 0 { throw DTMError.storageNotFound("") }
                let duplicate = try c.text(1)
                if !duplicate.isEmpty { throw DTMError.uniqueConflict("branch \(duplicate) of \(gid) exists") }
            }
        } catch let e as PostgresStoreError where e.isUniqueViolation {
            // Another coordinator inserted the same branch at the same moment.
            let name =
                try await read(.existingBranch, [.text(gid), .texts(branches.map(\.branchID)), .texts(branches.map(\.op))])
                .first.map { try PostgresColumns($0).text(0) } ?? "?"
            throw DTMError.uniqueConflict("branch \(name) of \(gid) exists")
        }
    }

    package func updateBranches(gid: String, requiring: GlobalStatus, updates: [BranchStatusUpdate], now: Timestamp, durability: WriteDurability) async throws {
        if Self.unmatchable(gid) { throw DTMError.storageNotFound("") }
        if updates.count == 1 {
            let u = updates[0]
            let merge = PostgresMergeable(
                kind: .updateBranch, gid: gid,
                columns: [
                    .text(gid), .text(requiring.rawValue), .text(u.branchID), .text(u.op),
                    .text(u.status.rawValue), .at(u.finishTime), .at(now),
                ], children: [],
                verdict: { found, updated in
                    if !found { return DTMError.storageNotFound("") }
                    return updated ? nil : DTMError.storageNotFound("branch \(u.branchID)/\(u.op) of \(gid)")
                })
            try await writer.write(merge: merge, durable: durability == .durable) { link in
                try Self.checkBranchUpdate(try await link.run(.updateBranch, PostgresValue.of(merge)), gid)
            }
            return
        }
        let values = [.text(gid), .text(requiring.rawValue)] + PostgresRows.updateArrays(updates) + [.time(now)]
        try await writer.write(merge: nil, durable: durability == .durable) { link in
            try Self.checkBranchUpdate(try await link.run(.updateBranches, values), gid)
        }
    }

    /// The answer of `updateBranch(es)`: the global status matched, and no branch was missing.
    private static func checkBranchUpdate(_ rows: [PostgresRow], _ gid: String) throws {
        let c = try Self.counts(rows)
        if try c.int(0) == 0 { throw DTMError.storageNotFound("") }
        let missing = try Self.missing(c, gid)
        if !missing.isEmpty { throw DTMError.storageNotFound(missing) }
    }

    package func touchCronTime(
        gid: String, requiring: GlobalStatus, interval: Int64, nextCronTime: Timestamp, branchUpdates: [BranchStatusUpdate],
        now: Timestamp, durability: WriteDurability
    ) async throws {
        if Self.unmatchable(gid) {
            if branchUpdates.isEmpty { return }
            throw DTMError.storageNotFound("")
        }
        let values: [PostgresValue] = [.text(gid), .text(requiring.rawValue), .int(Int64(Int32(clamping: interval))), .due(nextCronTime), .time(now)]
        let durable = durability == .durable
        if branchUpdates.isEmpty {
            try await writer.write(durable: durable) { link in _ = try await link.run(.touchCronTimeOnly, values) }
            return
        }
        let withUpdates = values + PostgresRows.updateArrays(branchUpdates)
        try await writer.write(durable: durable) { link in
            let c = try Self.counts(try await link.run(.touchCronTime, withUpdates))
            if try c.int(0) == 0 { throw DTMError.storageNotFound(try Self.missing(c, gid)) }
        }
    }

    /// Claims with `FOR UPDATE SKIP LOCKED`, so coordinators claiming at once take different rows. A due row the
    /// model cannot read is set aside for `unreadableRowPause` and logged, so that it neither fails every claim
    /// nor comes back at every pass.
    package func claimDue(dueBefore: Timestamp, leaseUntil: Timestamp, owner: String, limit: Int, now: Timestamp) async throws -> [GlobalTransaction] {
        let rows = try await writer.write { link in
            try await link.run(.claimDue, [.time(dueBefore), .int(Int64(limit)), .text(owner), .due(leaseUntil), .time(now)])
        }
        var claimed: [GlobalTransaction] = []
        for row in rows {
            let columns = PostgresColumns(row, gidColumn: 1)
            do {
                var t = try PostgresRows.global(columns)
                t.nextCronTime = leaseUntil.wholeSecondUp
                claimed.append(t)
            } catch let unreadable as UnreadableRow {
                let id = try columns.int(0)
                let parkedUntil = now.adding(seconds: Self.unreadableRowPause)
                try await writer.write { link in _ = try await link.run(.park, [.int(id), .time(parkedUntil)]) }
                logger.error(
                    "stored transaction cannot be processed; set aside",
                    metadata: [
                        "gid": .string(unreadable.gid), "error": .string(unreadable.problem), "seconds": .stringConvertible(Self.unreadableRowPause),
                    ])
            }
        }
        return claimed
    }

    /// How long a row that cannot be read is left alone before it is looked at again, seconds.
    static let unreadableRowPause: Double = 3600

    package func resetCronTime(laterThan: Timestamp, limit: Int, now: Timestamp) async throws -> (count: Int, hasRemaining: Bool) {
        let count = try await writer.write { link in
            try Self.counts(try await link.run(.resetCronTime, [.time(laterThan), .time(now), .int(Int64(limit))])).int(0)
        }
        return (Int(count), count == Int64(limit))
    }

    package func renewLease(gid: String, owner: String, until: Timestamp, now: Timestamp) async throws -> Bool {
        if Self.unmatchable(gid) { return false }
        return try await writer.write { link in
            !(try await link.run(.renewLease, [.text(gid), .text(owner), .due(until), .time(now)]).isEmpty)
        }
    }

    package func resetNextCronTime(gid: String, now: Timestamp) async throws {
        if Self.unmatchable(gid) { throw DTMError.storageNotFound("") }
        try await writer.write { link in
            if try await link.run(.resetNextCronTime, [.text(gid), .time(now)]).isEmpty { throw DTMError.storageNotFound("") }
        }
    }

    package func recordError(gid: String, message: String) async throws {
        if Self.unmatchable(gid) { return }
        let text = PostgresColumnLimits.fitted(message, 1024)
        _ = try await writer.write { link in try await link.run(.recordError, [.text(gid), .text(text)]) }
    }

    /// A row the model cannot read is left out (the cron loop sets it aside and logs it).
    package func unfinishedOldest(limit: Int) async throws -> [(transaction: GlobalTransaction, lastError: String)] {
        try await read(.unfinishedOldest, [.int(Int64(limit))]).compactMap { row in
            let c = PostgresColumns(row, gidColumn: 1)
            guard let t = try? PostgresRows.global(c) else { return nil }
            return (transaction: t, lastError: try c.text(18))
        }
    }

    package func deleteFinished(before: Timestamp, limit: Int) async throws -> Int {
        let count = try await writer.write { link in
            try Self.counts(try await link.run(.deleteFinished, [.time(before), .int(Int64(limit))])).int(0)
        }
        return Int(count)
    }

    package func createKV(_ record: KVRecord) async throws {
        try PostgresColumnLimits.check(record)
        try await writer.write { link in
            let rows = try await link.run(.createKV, [.text(record.cat), .text(record.key), .text(record.value), .time(record.createTime)])
            if rows.isEmpty { throw DTMError.uniqueConflict("") }
        }
    }

    package func updateKV(_ record: KVRecord, now: Timestamp) async throws {
        try PostgresColumnLimits.check(record)
        try await writer.write { link in
            let rows = try await link.run(
                .updateKV, [.text(record.cat), .text(record.key), .text(record.value), .int(record.version), .time(now)])
            if rows.isEmpty { throw DTMError.storageNotFound("") }
        }
    }

    package func deleteKV(cat: String, key: String) async throws {
        if Self.unmatchable(cat, key) { throw DTMError.storageNotFound("") }
        try await writer.write { link in
            if try await link.run(.deleteKV, [.text(cat), .text(key)]).isEmpty { throw DTMError.storageNotFound("") }
        }
    }
}
