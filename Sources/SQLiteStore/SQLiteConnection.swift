internal import CSQLite

/// One sqlite3 connection with its cache of prepared statements. Owns the `sqlite3*` and closes it in `deinit`.
///
/// `@unchecked Sendable`: a connection is used by one thread at a time, either the writer's thread or the task
/// that has checked it out of the reader pool; sqlite is opened NOMUTEX accordingly.
final class SQLiteConnection: @unchecked Sendable {
    private let db: OpaquePointer
    private var statements: [String: SQLiteStatement] = [:]
    private var prepared = [SQLiteStatement?](repeating: nil, count: SQL.allCases.count)

    init(path: String, readOnly: Bool) throws {
        var handle: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        _ = Self.configureLibrary
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let handle { sqlite3_close_v2(handle) }
            throw SQLiteError(code: rc, message: message, sql: "open \(path)")
        }
        self.db = handle
        // Both only set a field of an open handle and return SQLITE_OK.
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 10_000)
    }

    /// Once per process, before the first connection: no memory statistics, whose global mutex every sqlite
    /// malloc and free would otherwise take.
    private static let configureLibrary: Void = { _ = swiftdtm_sqlite_disable_memstatus() }()

    deinit {
        statements.removeAll()
        prepared.removeAll()
        sqlite3_close_v2(db)
    }

    /// Runs SQL text without parameters (schema, pragmas, transaction control).
    func execute(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "error \(rc)"
            sqlite3_free(message)
            throw SQLiteError(code: rc, message: text, sql: sql)
        }
    }

    /// The prepared statement of `sql` (prepared on first use).
    func statement(_ sql: SQL) throws -> SQLiteStatement {
        if let s = prepared[sql.rawValue] { return s }
        let s = try SQLiteStatement(db: db, sql: sql.text)
        prepared[sql.rawValue] = s
        return s
    }

    /// The cached prepared statement for SQL text outside `SQL` (schema checks; prepared on first use).
    func statement(_ sql: String) throws -> SQLiteStatement {
        if let s = statements[sql] { return s }
        let s = try SQLiteStatement(db: db, sql: sql)
        statements[sql] = s
        return s
    }

    /// Rows changed by the last INSERT/UPDATE/DELETE.
    var changes: Int { Int(sqlite3_changes(db)) }

    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(db) }

    /// A single integer from a query such as `PRAGMA user_version`.
    func scalar(_ sql: String) throws -> Int64 {
        let s = try statement(sql)
        return try s.query([]) { $0.int(0) }.first ?? 0
    }
}
