import Logging

/// Creates the database if missing, then creates or upgrades the schema at start-up under a named lock
/// (`GET_LOCK`), so that coordinators starting together migrate once. MySQL commits each schema change by itself,
/// so the version is recorded after every step: a failed step is the one run again at the next start.
struct MySQLMigrator {
    let configuration: MySQLStoreConfiguration
    let logger: Logger

    /// How long a coordinator waits for another one's migration, seconds.
    static let lockWait: Int64 = 3600

    /// Runs on the link's thread (every call blocks).
    func run(_ c: MySQLConnection, reset: Bool) throws {
        let t = configuration.tables
        // The lock is the server's, so it is named after the database and table it guards.
        let lock = "swift-dtm migrate \(configuration.database).\(t.globalBare)"
        let got = try MySQLColumns(try c.run("SELECT GET_LOCK(?, ?)", [.text(lock), .int(Self.lockWait)]).rows.first ?? []).optionalInt(0)
        guard got == 1 else { throw MySQLStoreError.unavailable("could not take the migration lock '\(lock)'") }
        defer { _ = try? c.run("SELECT RELEASE_LOCK(?)", [.text(lock)]) }
        if reset {
            for statement in MySQLSchema.drop(t) { try c.execute(statement) }
            logger.notice("store reset: tables dropped and created again", metadata: ["table": .string(t.globalBare)])
        }
        try c.execute("CREATE TABLE IF NOT EXISTS \(t.version) (version int NOT NULL) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4")
        let rows = try c.run("SELECT version FROM \(t.version)", []).rows
        let version: Int
        if let row = rows.first {
            version = Int(try MySQLColumns(row).int(0))
        } else {
            _ = try c.run("INSERT INTO \(t.version) (version) VALUES (0)", [])
            version = 0
        }
        let migrations = MySQLSchema.migrations(t)
        // A stored number: checked before it indexes anything.
        if version < 0 {
            throw MySQLStoreError.server(code: 0, sqlState: "HY000", message: "database schema version \(version) in swift_dtm_schema is not valid")
        }
        if version > migrations.count {
            throw MySQLStoreError.server(
                code: 0, sqlState: "HY000", message: "database schema version \(version) is newer than this server's \(migrations.count)")
        }
        for step in version..<migrations.count {
            for statement in migrations[step] { try c.execute(statement) }
            _ = try c.run("UPDATE \(t.version) SET version = ?", [.int(Int64(step + 1))])
            logger.info("schema migrated", metadata: ["version": .stringConvertible(step + 1)])
        }
    }
}
