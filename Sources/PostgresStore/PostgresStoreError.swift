import PostgresNIO

/// What went wrong talking to PostgreSQL, worded for the operator's log and the client's 500/UNKNOWN answer.
package enum PostgresStoreError: Error, CustomStringConvertible, Sendable {
    /// No usable connection: the server is down, restarting or unreachable. Nothing was written by the call, or
    /// (`outcomeUnknown`) its commit was sent but not confirmed.
    case unavailable(String, outcomeUnknown: Bool = false)
    /// The server refused a statement (SQLSTATE and its message).
    case server(sqlState: String, message: String)
    /// Too many writes already wait for the database.
    case queueFull(String)
    case closed

    package var description: String {
        switch self {
        case .unavailable(let why, let unknown):
            unknown ? "database connection lost while committing; the outcome is unknown: \(why)" : "database unavailable: \(why)"
        case .server(let state, let message): "database error \(state): \(message)"
        case .queueFull(let limit): "database write queue is full (\(limit)); try again"
        case .closed: "the store is closed"
        }
    }

    /// What went wrong, without the prefix `description` adds.
    var reason: String {
        switch self {
        case .unavailable(let why, _): why
        case .server(let state, let message): "\(state): \(message)"
        case .queueFull(let limit): limit
        case .closed: "closed"
        }
    }

    var sqlState: String? {
        if case .server(let state, _) = self { return state }
        return nil
    }

    /// The server asks for the transaction to be run again: deadlock (40P01) or serialization failure (40001).
    var isRetryable: Bool { sqlState?.hasPrefix("40") ?? false }

    /// A unique-key violation (23505).
    var isUniqueViolation: Bool { sqlState == "23505" }

    /// The server's SQLSTATEs after which the connection is not used again: it is shutting down, was terminated or
    /// is in recovery (classes 57 and 08, and 53300 too many connections).
    var dropsConnection: Bool {
        guard let state = sqlState else { return true }
        return state.hasPrefix("57") || state.hasPrefix("08") || state == "53300"
    }

    /// A failure of the database itself rather than of one statement: configuration or credentials (28, 3D).
    var isFatalAtStartup: Bool {
        guard let state = sqlState else { return false }
        return state.hasPrefix("28") || state.hasPrefix("3D") || state == "42501"
    }

    /// Classifies what postgres-nio threw.
    static func from(_ error: any Error) -> PostgresStoreError {
        if let e = error as? PostgresStoreError { return e }
        if let e = error as? PostgresError {
            switch e {
            case .server(let response):
                return .server(sqlState: response.fields[.sqlState] ?? "?????", message: response.fields[.message] ?? "")
            case .connectionClosed: return .unavailable("connection closed")
            case .protocol(let m): return .unavailable("protocol error: \(m)")
            }
        }
        if let e = error as? PSQLError {
            if let info = e.serverInfo {
                return .server(sqlState: info[.sqlState] ?? "?????", message: info[.message] ?? "")
            }
            return .unavailable(e.underlying.map { "\(e.code): \($0)" } ?? "\(e.code)")
        }
        return .unavailable(String(describing: error))
    }
}
