/// An error from sqlite3, with the result code, the message and the SQL that failed.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let message: String
    public let sql: String

    public var description: String { "sqlite error \(code): \(message) (in: \(sql.prefix(120)))" }

    /// SQLITE_CONSTRAINT and its extended codes.
    public var isConstraintViolation: Bool { code & 0xff == 19 }
}
