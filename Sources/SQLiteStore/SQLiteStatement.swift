internal import CSQLite

/// One prepared statement. Owns its `sqlite3_stmt*` and finalizes it in `deinit`; used only by the connection
/// that prepared it.
final class SQLiteStatement {
    private let handle: OpaquePointer
    private let db: OpaquePointer
    let sql: String

    init(db: OpaquePointer, sql: String) throws {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(db)), sql: sql)
        }
        self.handle = stmt
        self.db = db
        self.sql = sql
        self.parameterCount = sqlite3_bind_parameter_count(stmt)
        self.shortText = .allocate(capacity: max(1, Int(parameterCount)) * Self.copiedTextLimit)
    }

    deinit {
        // finalize and reset return the error of the statement's last step, which `step` already reported.
        sqlite3_finalize(handle)
        shortText.deallocate()
    }

    private let parameterCount: Int32
    /// Short text is copied here, `copiedTextLimit` bytes per parameter, and bound in place (SQLITE_STATIC) until
    /// the bindings are cleared.
    private let shortText: UnsafeMutablePointer<UInt8>

    /// A pointer to one NUL byte, for zero-length text and blobs. `nonisolated(unsafe)`: written once, then only read.
    nonisolated(unsafe) private static let empty: UnsafePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        p.pointee = 0
        return UnsafePointer(p)
    }()

    enum Value {
        case int(Int64)
        case text(String)
        case blob([UInt8])
        case null
    }

    /// Binds `values` to ?1, ?2, … and runs `body` while they are bound. Longer text and blobs are bound without a
    /// copy (SQLITE_STATIC, pointing into the values, which stay alive and unmoved inside their scopes around
    /// `body`); afterwards the statement is reset and its bindings cleared, so that no pointer outlives its value.
    /// Copying (SQLITE_TRANSIENT) every text cost sqlite a malloc and a memcpy per value on the single writer
    /// thread: 47 of the coordinator's 336 mallocs per gRPC saga. Short text (statuses, ops, branch ids, most
    /// gids) lives inside the String value, with no address that outlives a closure: it is copied into the
    /// statement's own buffer and bound from there, as a scope per value cost more in reference counting.
    /// Text is bound with its UTF-8 length, so that a NUL inside it is stored too (a C string would end there).
    private func withBindings<R>(_ values: [Value], _ body: () throws -> R) throws -> R {
        // Every run ends here reset with no bindings (and a new statement has none), so nothing to undo first.
        defer {
            sqlite3_reset(handle)  // returns the last step's error, already thrown by `step`
            sqlite3_clear_bindings(handle)  // always SQLITE_OK
        }
        return try bind(values, from: 0, body)
    }

    /// Longest text bound by copy: what fits in a small (inline) String.
    private static let copiedTextLimit = 15

    /// Binds the values from `index` on: scalars and short text in a row, each longer text or blob in its own
    /// scope around the rest.
    private func bind<R>(_ values: [Value], from index: Int, _ body: () throws -> R) throws -> R {
        var i = index
        while i < values.count {
            let position = Int32(i + 1)
            switch values[i] {
            case .int(let v):
                try check(sqlite3_bind_int64(handle, position, v))
            case .null:
                try check(sqlite3_bind_null(handle, position))
            case .text(var text) where text.utf8.count <= Self.copiedTextLimit:
                // A position the statement does not have: nothing is copied, and sqlite's bind reports the range.
                let slot = position <= parameterCount ? shortText + Int(position - 1) * Self.copiedTextLimit : nil
                let count =
                    slot.map { slot in
                        text.withUTF8 { utf8 in
                            if let base = utf8.baseAddress { slot.update(from: base, count: utf8.count) }
                            return utf8.count
                        }
                    } ?? 0
                let start = slot.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) } ?? Self.empty
                try check(sqlite3_bind_text(handle, position, start, Int32(count), nil))
            case .text(var text):
                let next = i + 1
                return try text.withUTF8 { utf8 in
                    // A zero-length value needs a non-null pointer, or it is bound as NULL (never here: it is short).
                    let start = utf8.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) } ?? Self.empty
                    try check(sqlite3_bind_text(handle, position, start, Int32(utf8.count), nil))
                    return try bind(values, from: next, body)
                }
            case .blob(let bytes):
                let next = i + 1
                return try bytes.withUnsafeBytes { raw in
                    try check(sqlite3_bind_blob(handle, position, raw.baseAddress ?? UnsafeRawPointer(Self.empty), Int32(raw.count), nil))
                    return try bind(values, from: next, body)
                }
            }
            i += 1
        }
        return try body()
    }

    private func check(_ rc: Int32) throws {
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    /// Steps once: true if a row is available.
    private func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw error(rc)
        }
    }

    /// Binds, runs to completion, resets.
    func run(_ values: [Value]) throws {
        try withBindings(values) { while try step() {} }
    }

    /// Binds, collects every row through `row`, resets.
    func query<T>(_ values: [Value], row: (SQLiteStatement) throws -> T) throws -> [T] {
        try withBindings(values) {
            var out: [T] = []
            while try step() { out.append(try row(self)) }
            return out
        }
    }

    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func optionalInt(_ column: Int32) -> Int64? {
        sqlite3_column_type(handle, column) == SQLITE_NULL ? nil : sqlite3_column_int64(handle, column)
    }

    func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(handle, column) else { return "" }
        // The length from sqlite (after sqlite3_column_text, as its documentation asks) spares a strlen.
        return String(decoding: UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(handle, column))), as: UTF8.self)
    }

    func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let p = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: count))
    }

    private func error(_ rc: Int32) -> SQLiteError {
        SQLiteError(code: sqlite3_extended_errcode(db), message: String(cString: sqlite3_errmsg(db)), sql: sql)
    }
}
