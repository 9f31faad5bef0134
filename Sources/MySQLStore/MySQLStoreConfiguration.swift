/// Where the MySQL store connects and how many connections it keeps (DTM's `Store.*` keys, spec §12).
package struct MySQLStoreConfiguration: Sendable {
    package var host = "127.0.0.1"
    package var port = 3306
    package var user = ""
    package var password = ""
    /// `Store.Db`: the database, created (utf8mb4) if missing, as DTM's script does.
    package var database = "dtm"
    package var tables = MySQLTables.dtm
    /// `Store.MaxOpenConns`: the store never opens more connections than this (at least 2: one writes, one reads).
    /// Each connection has a thread of its own.
    package var maxOpenConnections = 500
    /// Writer connections, each committing batches on its own thread; the rest serve reads.
    package var writerConnections = 2
    package var readerConnections = 2
    /// `Store.ConnMaxLifeTime` (minutes in DTM's configuration): a connection older than this is replaced; nil keeps it.
    package var connectionLifetime: Duration? = .seconds(300)
    /// A read or write on the socket that waits longer fails and drops the connection (the database stopped answering).
    package var ioTimeoutSeconds: UInt32 = 30
    package var connectTimeoutSeconds: UInt32 = 5
    /// How long start-up waits for the database to accept connections (DTM waits for its store too).
    package var startupWait: Duration = .seconds(60)

    package init() {}

    /// Writers and readers within `maxOpenConnections`.
    var connectionCounts: (writers: Int, readers: Int) {
        let total = max(2, min(maxOpenConnections, writerConnections + readerConnections))
        let writers = max(1, min(writerConnections, total - 1))
        return (writers, max(1, total - writers))
    }

    var settings: MySQLConnection.Settings {
        var s = MySQLConnection.Settings()
        s.host = host
        s.port = port
        s.user = user
        s.password = password
        s.database = database
        s.connectTimeoutSeconds = connectTimeoutSeconds
        s.ioTimeoutSeconds = ioTimeoutSeconds
        return s
    }
}
