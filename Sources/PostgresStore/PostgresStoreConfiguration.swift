import NIOCore
import PostgresNIO

/// Where the PostgreSQL store connects and how many connections it keeps (DTM's `Store.*` keys, spec §12).
public struct PostgresStoreConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 5432
    public var user = ""
    public var password = ""
    public var database = "dtm"
    /// `Store.Schema`: the search_path, created if missing.
    public var schema = "public"
    public var tables = PostgresTables.dtm
    /// `Store.MaxOpenConns`: the store never opens more connections than this (at least 2: one writes, one reads).
    public var maxOpenConnections = 500
    /// Writer connections, each committing batches; the rest of `connections` serve reads.
    public var writerConnections = 2
    public var readerConnections = 1
    /// `Store.ConnMaxLifeTime` (minutes in DTM's configuration): a connection older than this is replaced; nil keeps it.
    public var connectionLifetime: Duration? = .seconds(300)
    /// A statement that takes longer closes its connection (the database stopped answering).
    public var statementTimeout: TimeAmount = .seconds(30)
    public var connectTimeout: TimeAmount = .seconds(5)
    /// How long start-up waits for the database to accept connections (DTM waits for its store too).
    public var startupWait: Duration = .seconds(60)

    public init() {}

    /// Writers and readers within `maxOpenConnections`.
    var connectionCounts: (writers: Int, readers: Int) {
        let total = max(2, min(maxOpenConnections, writerConnections + readerConnections))
        let writers = max(1, min(writerConnections, total - 1))
        return (writers, max(1, total - writers))
    }

    var connection: PostgresConnection.Configuration {
        var c = PostgresConnection.Configuration(
            host: host, port: port, username: user, password: password.isEmpty ? nil : password, database: database, tls: .disable)
        c.options.connectTimeout = connectTimeout
        c.options.additionalStartupParameters = [("search_path", schema), ("application_name", "swift-dtm")]
        return c
    }
}
