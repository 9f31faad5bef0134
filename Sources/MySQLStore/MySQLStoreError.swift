/// What went wrong talking to MySQL, worded for the operator's log and the client's 500/UNKNOWN answer.
package enum MySQLStoreError: Error, CustomStringConvertible, Sendable {
    /// No usable connection: the server is down, restarting or unreachable. Nothing was written by the call, or
    /// (`outcomeUnknown`) its commit was sent but not confirmed.
    case unavailable(String, outcomeUnknown: Bool = false)
    /// The server (or the client library) refused a statement: its error number, SQLSTATE and message.
    case server(code: UInt32, sqlState: String, message: String)
    /// Too many writes already wait for the database.
    case queueFull(String)
    case closed

    package var description: String {
        switch self {
        case .unavailable(let why, let unknown):
            unknown ? "database connection lost while committing; the outcome is unknown: \(why)" : "database unavailable: \(why)"
        case .server(let code, let state, let message): "database error \(code) (\(state)): \(message)"
        case .queueFull(let limit): "database write queue is full (\(limit)); try again"
        case .closed: "the store is closed"
        }
    }

    /// What went wrong, without the prefix `description` adds.
    var reason: String {
        switch self {
        case .unavailable(let why, _): why
        case .server(let code, _, let message): "\(code): \(message)"
        case .queueFull(let limit): limit
        case .closed: "closed"
        }
    }

    var code: UInt32? {
        if case .server(let code, _, _) = self { return code }
        return nil
    }

    /// The server asks for the transaction again: deadlock (1213, which rolled the whole transaction back) or a
    /// lock wait timeout (1205).
    var isRetryable: Bool { code == 1213 || code == 1205 }

    /// A duplicate key (1062): InnoDB rolls back the statement only, so the transaction may go on.
    var isDuplicateKey: Bool { code == 1062 }

    /// Errors after which the connection is not used again: the client library's own (CR_*, 2000-2999: server
    /// gone, lost, cannot connect), the server shutting down (1053), the connection killed (1927) or timed out by
    /// the server (4031), too many connections (1040).
    var dropsConnection: Bool {
        guard let code else { return true }
        return (2000..<3000).contains(code) || [1053, 1927, 4031, 1040].contains(code)
    }

    /// A failure of the configuration rather than of the moment: credentials (1045), access to the database (1044),
    /// an unknown database (1049).
    var isFatalAtStartup: Bool {
        guard let code else { return false }
        return [1044, 1045, 1049].contains(code)
    }
}
