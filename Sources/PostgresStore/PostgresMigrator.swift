import Logging

/// Creates or upgrades the schema at start-up, in one transaction under an advisory lock, so that coordinators
/// starting together migrate once and a failed step leaves the database as it was.
struct PostgresMigrator {
    let link: PostgresLink
    let tables: PostgresTables
    let schema: String
    let logger: Logger

    func run(reset: Bool) async throws {
        _ = try await link.run(.begin, [])
        do {
            try await migrate(reset: reset)
            _ = try await link.run(.commit, [])
        } catch {
            _ = try? await link.run(.rollback, [])
            throw error
        }
    }

    private func migrate(reset: Bool) async throws {
        _ = try await link.runText("SELECT pg_advisory_xact_lock(\(PostgresSchema.migrationLock))")
        if schema != "public" { _ = try await link.runText("CREATE SCHEMA IF NOT EXISTS \(schema)") }
        let versionTable = PostgresSchema.versionTable(tables)
        if reset {
            for statement in PostgresSchema.statements(PostgresSchema.drop(tables)) { _ = try await link.runText(statement) }
            logger.notice("store reset: tables dropped and created again", metadata: ["table": .string(tables.global)])
        }
        _ = try await link.runText("CREATE TABLE IF NOT EXISTS \(versionTable) (version int NOT NULL)")
        let rows = try await link.runText("SELECT version FROM \(versionTable)")
        let version: Int
        if let row = rows.first {
            version = Int(try PostgresColumns(row).int(0))
        } else {
            _ = try await link.runText("INSERT INTO \(versionTable) (version) VALUES (0)")
            version = 0
        }
        let migrations = PostgresSchema.migrations(tables)
        // A stored number: checked before it indexes anything.
        if version < 0 {
            throw PostgresStoreError.server(sqlState: "XX000", message: "database schema version \(version) in \(versionTable) is not valid")
        }
        if version > migrations.count {
            throw PostgresStoreError.server(
                sqlState: "XX000", message: "database schema version \(version) is newer than this server's \(migrations.count)")
        }
        for step in version..<migrations.count {
            for statement in PostgresSchema.statements(migrations[step]) { _ = try await link.runText(statement) }
            logger.info("schema migrated", metadata: ["version": .stringConvertible(step + 1)])
        }
        if version < migrations.count { _ = try await link.runText("UPDATE \(versionTable) SET version = \(migrations.count)") }
    }
}
