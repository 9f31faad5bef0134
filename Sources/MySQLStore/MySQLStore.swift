package import DTMCore
package import Logging
import Synchronization

/// DTM's MySQL store (MySQL 8, MariaDB 10.6+): several coordinators share one database (spec §11, DTM's schema).
///
/// Writes go through `MySQLWriter` (group commit on a few connections); reads take one of a few reader
/// connections in turn. Every connection has a thread of its own, since the client library blocks.
package final class MySQLStore: TransactionStore {
    package let configuration: MySQLStoreConfiguration
    let writer: MySQLWriter
    let sql: MySQLSQL
    let logger: Logger
    private let readers: [MySQLLink]
    private let writerLinks: [MySQLLink]
    private let nextReader = Atomic<Int>(0)

    private init(configuration: MySQLStoreConfiguration, writerLinks: [MySQLLink], readers: [MySQLLink], logger: Logger) {
        self.configuration = configuration
        self.writerLinks = writerLinks
        self.readers = readers
        self.sql = MySQLSQL(configuration.tables)
        self.writer = MySQLWriter(links: writerLinks, sql: MySQLSQL(configuration.tables), logger: logger)
        self.logger = logger
    }

    /// Connects (waiting up to `startupWait` for the database to accept connections), creates the database if it
    /// is missing, migrates the schema or, with `reset`, drops and recreates it (`-r`), and opens the connections.
    package static func open(_ configuration: MySQLStoreConfiguration, reset: Bool = false, logger: Logger) async throws -> MySQLStore {
        guard MySQLTables.isDatabaseName(configuration.database) else {
            throw MySQLStoreError.server(code: 0, sqlState: "3D000", message: "Store.Db '\(configuration.database.prefix(64))' is not a database name")
        }
        try await prepareDatabase(configuration, reset: reset, logger: logger)
        let (writers, readers) = configuration.connectionCounts
        let links = (0..<(writers + readers)).map {
            MySQLLink(settings: configuration.settings, maxLifetime: configuration.connectionLifetime, id: $0, logger: logger)
        }
        logger.info(
            "mysql store open",
            metadata: [
                "host": .string(configuration.host), "port": .stringConvertible(configuration.port), "db": .string(configuration.database),
                "writers": .stringConvertible(writers), "readers": .stringConvertible(readers),
                "schema_version": .stringConvertible(MySQLSchema.currentVersion),
            ])
        return MySQLStore(configuration: configuration, writerLinks: Array(links.prefix(writers)), readers: Array(links.suffix(readers)), logger: logger)
    }

    /// On a connection of its own without a default database: creates the database (utf8mb4, as DTM's script) and
    /// migrates. Schema changes on a large table may take long, so this connection waits up to an hour for them.
    private static func prepareDatabase(_ configuration: MySQLStoreConfiguration, reset: Bool, logger: Logger) async throws {
        var settings = configuration.settings
        settings.database = ""
        settings.ioTimeoutSeconds = 3600
        let link = MySQLLink(settings: settings, maxLifetime: nil, id: -1, logger: logger)
        defer { Task { await link.close() } }
        let deadline = ContinuousClock.now + configuration.startupWait
        let database = configuration.database
        while true {
            do {
                try await link.perform { c in
                    do {
                        try c.execute("CREATE DATABASE IF NOT EXISTS `\(database)` DEFAULT CHARACTER SET utf8mb4")
                    } catch let error as MySQLStoreError where error.code == 1044 {
                        // No right to create databases: the database may exist already; USE says.
                    }
                    try c.execute("USE `\(database)`")
                    try MySQLMigrator(configuration: configuration, logger: logger).run(c, reset: reset)
                }
                return
            } catch let e as MySQLStoreError {
                if !e.dropsConnection || e.isFatalAtStartup || ContinuousClock.now >= deadline { throw e }
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

    func read(_ statement: String, _ values: [MySQLValue]) async throws -> [[MySQLCell]] {
        let i = nextReader.wrappingAdd(1, ordering: .relaxed).oldValue
        return try await readers[Int(UInt(bitPattern: i) % UInt(readers.count))].perform { c in try c.run(statement, values).rows }
    }

    /// Keys with a NUL are never stored (`MySQLColumnLimits`), so nothing matches them.
    static func unmatchable(_ keys: String...) -> Bool { keys.contains { $0.utf8.contains(0) } }

    package func transaction(gid: String) async throws -> GlobalTransaction? {
        if Self.unmatchable(gid) { return nil }
        return try await read(sql.globalByGid, [.text(gid)]).first.map { try MySQLRows.global(MySQLColumns($0, gidColumn: 1)) }
    }

    package func branches(gid: String) async throws -> [Branch] {
        if Self.unmatchable(gid) { return [] }
        return try await read(sql.branchesByGid, [.text(gid)]).map { try MySQLRows.branch(MySQLColumns($0, gidColumn: 1)) }
    }

    /// A row the model cannot read is left out of the page (and logged); the page still ends where the rows ended.
    package func scan(position: Int64?, limit: Int, filter: TransactionFilter) async throws -> (transactions: [GlobalTransaction], nextPosition: Int64?) {
        if Self.unmatchable(filter.status, filter.transType) { return ([], nil) }
        let rows = try await read(
            sql.scan,
            [
                .int(position ?? .max), .text(filter.status), .text(filter.status), .text(filter.transType), .text(filter.transType),
                .instant(filter.createTimeStart), .instant(filter.createTimeStart), .instant(filter.createTimeEnd), .instant(filter.createTimeEnd),
                .int(Int64(limit)),
            ])
        var page: [GlobalTransaction] = []
        var lastID: Int64?
        for row in rows {
            let columns = MySQLColumns(row, gidColumn: 1)
            lastID = try columns.int(0)
            do {
                page.append(try MySQLRows.global(columns))
            } catch let unreadable as UnreadableRow {
                logger.warning("stored transaction left out of a listing", metadata: ["gid": .string(unreadable.gid), "error": .string(unreadable.problem)])
            }
        }
        return (page, rows.count == limit ? lastID : nil)
    }

    package func scanKV(cat: String, position: Int64?, limit: Int) async throws -> (records: [KVRecord], nextPosition: Int64?) {
        if Self.unmatchable(cat) { return ([], nil) }
        let records = try await read(sql.scanKV, [.text(cat), .int(position ?? .max), .int(Int64(limit))]).map { try MySQLRows.kv(MySQLColumns($0)) }
        return (records, records.count == limit ? records.last?.id : nil)
    }

    package func findKV(cat: String, key: String) async throws -> [KVRecord] {
        if Self.unmatchable(cat, key) { return [] }
        return try await read(sql.findKV, [.text(cat), .text(cat), .text(key), .text(key)]).map { try MySQLRows.kv(MySQLColumns($0)) }
    }

    package func backlog(now: Timestamp, overdueBefore: Timestamp, cap: Int) async throws -> Backlog {
        let n = MySQLValue.int(Int64(cap))
        guard let row = try await read(sql.backlog, [n, n, n, .instant(now), n, .instant(overdueBefore), n]).first else {
            throw MySQLStoreError.server(code: 0, sqlState: "HY000", message: "backlog returned no row")
        }
        let c = MySQLColumns(row)
        var b = Backlog()
        b.prepared = Int(try c.int(0))
        b.submitted = Int(try c.int(1))
        b.aborting = Int(try c.int(2))
        b.due = Int(try c.int(3))
        b.overdue = Int(try c.int(4))
        return b
    }

    /// A row the model cannot read is left out (the cron loop sets it aside and logs it).
    package func unfinishedOldest(limit: Int) async throws -> [(transaction: GlobalTransaction, lastError: String)] {
        try await read(sql.unfinishedOldest, [.int(Int64(limit))]).compactMap { row in
            let c = MySQLColumns(row, gidColumn: 1)
            guard let t = try? MySQLRows.global(c) else { return nil }
            return (transaction: t, lastError: try c.text(18))
        }
    }
}
