import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// One long-lived connection to PostgreSQL and the statements prepared on it.
///
/// The connection is opened on first use and again after it is lost, at most once per back-off period (0.25 s
/// doubling to 5 s): while the database is down, calls fail at once with `unavailable` instead of queueing
/// connection attempts. A statement that takes longer than `statementTimeout` closes the connection, so that a
/// database that stops answering gives errors, not hangs. After `maxLifetime` the connection is replaced.
final class PostgresLink: Sendable {
    struct Settings: Sendable {
        var configuration: PostgresConnection.Configuration
        var statementTimeout: TimeAmount = .seconds(30)
        var maxLifetime: Duration? = nil
    }

    private let settings: Settings
    private let sql: PostgresSQL
    private let id: Int
    private let logger: Logger
    /// The loop every connection of this link lives on: work that waits on the link can run there too, so that an
    /// answer resumes it in the same loop iteration instead of waking another thread.
    let eventLoop: any EventLoop
    /// Its sessions commit with `synchronous_commit=off`: the writer's link for ordered writes (`PostgresWriter`).
    let ordered: Bool

    private struct State {
        var connection: PostgresConnection?
        var openedAt = ContinuousClock.now
        var prepared: [Int: PreparedQuery] = [:]
        var connecting: Task<PostgresConnection, any Error>?
        var attempt = 0
        var retryAt: ContinuousClock.Instant?
        var backoff: Duration = .milliseconds(250)
        var lastError = ""
        var closed = false
    }
    private let state = Mutex(State())

    init(
        settings: Settings, sql: PostgresSQL, id: Int, logger: Logger, ordered: Bool = false,
        eventLoop: any EventLoop = PostgresConnection.defaultEventLoopGroup.next()
    ) {
        var settings = settings
        if ordered { settings.configuration.options.additionalStartupParameters.append(("synchronous_commit", "off")) }
        self.ordered = ordered
        self.settings = settings
        self.sql = sql
        self.id = id
        self.logger = logger
        self.eventLoop = eventLoop
    }

    /// Runs one prepared statement and returns its rows.
    func run(_ statement: PostgresStatement, _ values: [PostgresValue]) async throws -> [PostgresRow] {
        let connection = try await connection()
        do {
            return try await execute(statement, values, on: connection)
        } catch let e as PostgresStoreError where e.sqlState == "26000" || e.sqlState == "0A000" {
            // The prepared statement is gone or no longer matches its table (changed by hand): prepare it again once.
            state.withLock { $0.prepared[statement.rawValue] = nil }
            return try await execute(statement, values, on: connection)
        }
    }

    /// Runs SQL text that is not a prepared statement: schema changes at start-up, which may take long on a large
    /// table (an index built over millions of rows), so they get an hour, not the statement timeout.
    func runText(_ text: String) async throws -> [PostgresRow] {
        let connection = try await connection()
        return try await guarded(connection, timeout: .hours(1)) {
            var rows: [PostgresRow] = []
            for try await row in try await connection.query(PostgresQuery(unsafeSQL: text), logger: logger) { rows.append(row) }
            return rows
        }
    }

    private func execute(
        _ statement: PostgresStatement, _ values: [PostgresValue], on connection: PostgresConnection
    ) async throws
        -> [PostgresRow]
    {
        try await guarded(connection) {
            let prepared: PreparedQuery
            if let known = state.withLock({ $0.prepared[statement.rawValue] }) {
                prepared = known
            } else {
                prepared = try await connection.prepare(query: sql[statement]).get()
                state.withLock { s in
                    if s.connection === connection { s.prepared[statement.rawValue] = prepared }
                }
            }
            return try await prepared.execute(values.map(\.data)).get()
        }
    }

    /// Bounds `body` by the statement timeout (or `timeout`) and classifies its errors; a lost connection is dropped.
    private func guarded<T>(_ connection: PostgresConnection, timeout: TimeAmount? = nil, _ body: () async throws -> T) async throws -> T {
        let timeout = timeout ?? settings.statementTimeout
        let timer = connection.eventLoop.scheduleTask(in: timeout) { [logger, id] in
            logger.error("database statement timed out; closing the connection", metadata: ["connection": .stringConvertible(id)])
            Self.closeSoon(connection)
        }
        defer { timer.cancel() }
        do {
            return try await body()
        } catch {
            let e = PostgresStoreError.from(error)
            if e.dropsConnection || connection.isClosed { drop(connection, because: e.description) }
            throw e
        }
    }

    /// Forgets a connection that failed (closing it), so that the next call opens another.
    func drop(_ connection: PostgresConnection, because reason: String) {
        let dropped = state.withLock { s -> Bool in
            guard s.connection === connection else { return false }
            s.connection = nil
            s.prepared = [:]
            return true
        }
        Self.closeSoon(connection)
        if dropped {
            logger.warning("database connection lost", metadata: ["connection": .stringConvertible(id), "error": .string(reason)])
        }
    }

    private enum Step {
        case ready(PostgresConnection)
        case wait(Task<PostgresConnection, any Error>, attempt: Int)
        case refuse(String)
    }

    func connection() async throws -> PostgresConnection {
        let now = ContinuousClock.now
        var retired: PostgresConnection?
        let step = state.withLock { s -> Step in
            if s.closed { return .refuse("the store is closed") }
            if let c = s.connection {
                let expired = settings.maxLifetime.map { now - s.openedAt > $0 } ?? false
                if !c.isClosed && !expired { return .ready(c) }
                s.connection = nil
                s.prepared = [:]
                retired = c
            }
            if let task = s.connecting { return .wait(task, attempt: s.attempt) }
            if let at = s.retryAt, now < at { return .refuse(s.lastError) }
            s.attempt += 1
            let settings = self.settings
            let (logger, id, eventLoop) = (self.logger, self.id, self.eventLoop)
            let task = Task {
                try await PostgresConnection.connect(on: eventLoop, configuration: settings.configuration, id: id, logger: logger)
            }
            s.connecting = task
            return .wait(task, attempt: s.attempt)
        }
        if let retired { Self.closeSoon(retired) }
        switch step {
        case .ready(let c): return c
        case .refuse(let why): throw PostgresStoreError.unavailable(why)
        case .wait(let task, let attempt):
            do {
                let c = try await task.value
                let use = state.withLock { s -> Bool in
                    guard s.attempt == attempt, s.connecting != nil else { return s.connection === c }
                    s.connecting = nil
                    if s.closed { return false }
                    s.connection = c
                    s.openedAt = ContinuousClock.now
                    s.retryAt = nil
                    s.backoff = .milliseconds(250)
                    return true
                }
                guard use else {
                    Self.closeSoon(c)
                    throw PostgresStoreError.closed
                }
                return c
            } catch let error as PostgresStoreError {
                throw error
            } catch {
                let e = PostgresStoreError.from(error)
                let wait = state.withLock { s -> Duration in
                    if s.attempt == attempt && s.connecting != nil {
                        s.connecting = nil
                        s.retryAt = ContinuousClock.now + s.backoff
                        s.lastError = e.reason
                        s.backoff = min(s.backoff * 2, .seconds(5))
                    }
                    return s.backoff
                }
                logger.warning(
                    "cannot connect to the database",
                    metadata: ["connection": .stringConvertible(id), "error": .string(e.description), "retry_in": .string("\(wait)")])
                throw e
            }
        }
    }

    deinit {
        // A store dropped without `close()` (a test's) must not leave an open connection behind it.
        if let c = state.withLock({ $0.connection }) { Self.closeSoon(c) }
    }

    /// Closes without waiting (the outcome does not matter: the connection is not used again). The callback keeps
    /// the connection alive until it is closed, as postgres-nio requires of a connection that goes away.
    private static func closeSoon(_ connection: PostgresConnection) {
        let closing: EventLoopFuture<Void> = connection.close()
        closing.whenComplete { _ in withExtendedLifetime(connection) {} }
    }

    func close() async {
        let (connection, connecting) = state.withLock { s in
            s.closed = true
            defer {
                s.connection = nil
                s.prepared = [:]
            }
            return (s.connection, s.connecting)
        }
        if let c = try? await connecting?.value { try? await c.close() }
        try? await connection?.close()
    }
}
