internal import CMariaDB

/// One connection (`MYSQL*`) and the statements prepared on it. Not thread-safe: owned by one `MySQLLink` and
/// used only on that link's thread, as the client library requires.
final class MySQLConnection {
    struct Settings: Sendable {
        var host = "127.0.0.1"
        var port = 3306
        var user = ""
        var password = ""
        /// Empty: no default database (the migrator connects so, to create it).
        var database = ""
        var connectTimeoutSeconds: UInt32 = 5
        /// A read or write that waits longer fails and drops the connection: a database that stops answering gives
        /// errors, not hangs.
        var ioTimeoutSeconds: UInt32 = 30
    }

    private let handle: UnsafeMutablePointer<MYSQL>
    private var statements: [String: MySQLStatement] = [:]
    /// Most statements kept prepared (the server's `max_prepared_stmt_count` is shared by every connection).
    private static let maxStatements = 128
    let openedAt = ContinuousClock.now

    /// `mysql_library_init`, once per process, before any thread opens a connection (it is not thread-safe).
    private static let library: Int32 = mysql_server_init(0, nil, nil)

    init(_ settings: Settings) throws(MySQLStoreError) {
        guard Self.library == 0 else { throw .unavailable("the MariaDB client library failed to initialize") }
        guard let handle = mysql_init(nil) else { throw .unavailable("out of memory for a database connection") }
        // From here on a throw runs `deinit`, which closes the handle: the failure paths below must not close it.
        self.handle = handle
        var connectTimeout = settings.connectTimeoutSeconds
        var ioTimeout = settings.ioTimeoutSeconds
        let options =
            mysql_options(handle, MYSQL_OPT_CONNECT_TIMEOUT, &connectTimeout) == 0
            && mysql_options(handle, MYSQL_OPT_READ_TIMEOUT, &ioTimeout) == 0
            && mysql_options(handle, MYSQL_OPT_WRITE_TIMEOUT, &ioTimeout) == 0
            && mysql_options(handle, MYSQL_SET_CHARSET_NAME, "utf8mb4") == 0
        guard options else { throw .unavailable("the MariaDB client library refused a connection option") }
        let connected = mysql_real_connect(
            handle, settings.host, settings.user, settings.password, settings.database.isEmpty ? nil : settings.database, UInt32(clamping: settings.port),
            nil, UInt(CLIENT_FOUND_ROWS))
        guard connected != nil else { throw Self.error(handle) }
        // READ COMMITTED: locking reads lock the rows they find, not the gaps between them, so coordinators
        // claiming and writing at once do not block each other on rows they do not share. Strict mode: a value
        // that does not fit is an error, never silently cut.
        try execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        try execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'")
    }

    deinit {
        statements.removeAll()
        mysql_close(handle)
    }

    static func error(_ handle: UnsafeMutablePointer<MYSQL>) -> MySQLStoreError {
        let code = mysql_errno(handle)
        let message = String(cString: mysql_error(handle))
        if code >= 2000 && code < 3000 { return .unavailable("\(code): \(message)") }
        return .server(code: code, sqlState: String(cString: mysql_sqlstate(handle)), message: message)
    }

    /// Runs a statement (prepared once, then kept) with its values bound.
    func run(_ sql: String, _ values: [MySQLValue]) throws(MySQLStoreError) -> MySQLResult {
        let statement: MySQLStatement
        if let known = statements[sql] {
            statement = known
        } else {
            if statements.count >= Self.maxStatements { statements.removeAll() }
            statement = try MySQLStatement(handle, sql: sql)
            statements[sql] = statement
        }
        do {
            return try statement.execute(values)
        } catch {
            // A statement that failed for the connection's sake is prepared again on the next connection anyway;
            // one the server no longer knows (1243) or must prepare again (1615) is dropped here.
            if error.code == 1243 || error.code == 1615 { statements[sql] = nil }
            throw Self.classified(error)
        }
    }

    /// SQL text without values: transaction control and schema changes. Any result is discarded.
    func execute(_ sql: String) throws(MySQLStoreError) {
        var text = sql
        let failed = text.withUTF8 { utf8 in
            utf8.withMemoryRebound(to: CChar.self) { mysql_real_query(handle, $0.baseAddress, UInt(utf8.count)) }
        }
        if failed != 0 { throw Self.error(handle) }
        if let result = mysql_store_result(handle) { mysql_free_result(result) }
    }

    /// Client-library errors of a statement (2000-2999: the connection is gone) as `unavailable`.
    private static func classified(_ e: MySQLStoreError) -> MySQLStoreError {
        if case .server(let code, _, let message) = e, code >= 2000 && code < 3000 { return .unavailable("\(code): \(message)") }
        return e
    }
}
