internal import CMariaDB

/// The rows and the affected-row count of one statement.
struct MySQLResult: Sendable {
    var rows: [[MySQLCell]] = []
    /// Rows matched (the connection asks for found rows, not changed rows, so that a compare-and-set that writes
    /// the values a row already has still counts).
    var affectedRows: Int64 = 0
}

/// One prepared statement (`MYSQL_STMT*`), owned by its connection's statement cache and used only on that
/// connection's thread. Values are bound for each execution from buffers that live for the call; results are
/// buffered (`mysql_stmt_store_result`) and copied out.
final class MySQLStatement {
    private let handle: UnsafeMutablePointer<MYSQL_STMT>
    private let parameterCount: Int

    init(_ connection: UnsafeMutablePointer<MYSQL>, sql: String) throws(MySQLStoreError) {
        // The handle is closed here on failure: `self` is not yet initialized, so `deinit` does not run.
        guard let handle = mysql_stmt_init(connection) else { throw MySQLConnection.error(connection) }
        var text = sql
        let prepared = text.withUTF8 { utf8 in
            utf8.withMemoryRebound(to: CChar.self) { mysql_stmt_prepare(handle, $0.baseAddress, UInt(utf8.count)) }
        }
        if prepared != 0 {
            let e = Self.error(handle)
            mysql_stmt_close(handle)
            throw e
        }
        // Result buffers are sized from each column's longest value in the buffered result.
        var update: my_bool = 1
        if mysql_stmt_attr_set(handle, STMT_ATTR_UPDATE_MAX_LENGTH, &update) != 0 {
            let e = Self.error(handle)
            mysql_stmt_close(handle)
            throw e
        }
        parameterCount = Int(mysql_stmt_param_count(handle))
        self.handle = handle
    }

    deinit { mysql_stmt_close(handle) }

    static func error(_ handle: UnsafeMutablePointer<MYSQL_STMT>) -> MySQLStoreError {
        .server(code: mysql_stmt_errno(handle), sqlState: String(cString: mysql_stmt_sqlstate(handle)), message: String(cString: mysql_stmt_error(handle)))
    }

    func execute(_ values: [MySQLValue]) throws(MySQLStoreError) -> MySQLResult {
        guard values.count == parameterCount else {
            throw .server(code: 0, sqlState: "HY000", message: "statement takes \(parameterCount) values, given \(values.count)")
        }
        var parameters = MySQLBindings(values)
        defer { parameters.free() }
        if !values.isEmpty {
            let failed = parameters.binds.withUnsafeMutableBufferPointer { mysql_stmt_bind_param(handle, $0.baseAddress) }
            if failed != 0 { throw Self.error(handle) }
        }
        if mysql_stmt_execute(handle) != 0 { throw Self.error(handle) }
        var result = MySQLResult()
        let affected = mysql_stmt_affected_rows(handle)
        result.affectedRows = affected == .max ? 0 : Int64(clamping: affected)
        if mysql_stmt_field_count(handle) > 0 { result.rows = try fetchAll() }
        return result
    }

    private func fetchAll() throws(MySQLStoreError) -> [[MySQLCell]] {
        if mysql_stmt_store_result(handle) != 0 { throw Self.error(handle) }
        defer { mysql_stmt_free_result(handle) }
        guard let metadata = mysql_stmt_result_metadata(handle) else { throw Self.error(handle) }
        defer { mysql_free_result(metadata) }
        let count = Int(mysql_num_fields(metadata))
        guard count > 0, let fields = mysql_fetch_fields(metadata) else { return [] }
        var columns = MySQLResultBuffers((0..<count).map { MySQLResultBuffers.Kind(fields[$0]) })
        defer { columns.free() }
        let failed = columns.binds.withUnsafeMutableBufferPointer { mysql_stmt_bind_result(handle, $0.baseAddress) }
        if failed != 0 { throw Self.error(handle) }
        var rows: [[MySQLCell]] = []
        while true {
            let status = mysql_stmt_fetch(handle)
            if status == MYSQL_NO_DATA { return rows }
            guard status == 0 else {
                if status == MYSQL_DATA_TRUNCATED { throw .server(code: 2032, sqlState: "01004", message: "a result column did not fit its buffer") }
                throw Self.error(handle)
            }
            rows.append(columns.row())
        }
    }
}
