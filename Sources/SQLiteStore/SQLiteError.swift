/// An error from sqlite3, with the result code, the message and the SQL that failed.
package struct SQLiteError: Error, CustomStringConvertible, Sendable {
    package let code: Int32
    package let message: String
    package let sql: String

    package var description: String { "sqlite error \(code): \(message) (in: \(sql.prefix(120)))" }

    /// SQLITE_CONSTRAINT and its extended codes.
    package var isConstraintViolation: Bool { code & 0xff == 19 }
}
