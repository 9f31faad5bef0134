import DTMCore
import Logging
import MySQLStore
import PostgresStore
import SQLiteStore

/// The store `Store.Driver` names, opened (migrated, or reset with `-r`), and how to close it.
struct OpenedStore: Sendable {
    let store: any TransactionStore
    /// Where it is, for the start-up line.
    let location: String
    let close: @Sendable () async -> Void

    static func open(_ configuration: Configuration, reset: Bool, logger: Logger) async throws -> OpenedStore {
        switch configuration.storeDriver {
        case "postgres":
            let c = configuration.postgres
            let store = try await PostgresStore.open(c, reset: reset, logger: logger)
            let location = "postgres://\(c.user)@\(c.host):\(c.port)/\(c.database)?search_path=\(c.schema)&sslmode=\(c.sslMode.rawValue)"
            return OpenedStore(store: store, location: location) { await store.close() }
        case "mysql":
            let c = configuration.mysql
            let store = try await MySQLStore.open(c, reset: reset, logger: logger)
            return OpenedStore(store: store, location: "mysql://\(c.user)@\(c.host):\(c.port)/\(c.database)") { await store.close() }
        default:
            let store = try SQLiteStore(path: configuration.storeFile, reset: reset, logger: logger)
            if reset { logger.notice("store reset", metadata: ["path": .string(configuration.storeFile)]) }
            return OpenedStore(store: store, location: configuration.storeFile) { store.close() }
        }
    }
}
