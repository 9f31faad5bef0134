import Dispatch
import Logging
import Synchronization

/// One long-lived connection to MySQL on a thread of its own: the client library blocks, so each connection's
/// calls run on its own serial queue, never on an event loop or the cooperative pool.
///
/// The connection is opened on first use and again after it is lost, at most once per back-off period (0.25 s
/// doubling to 5 s): while the database is down, calls fail at once with `unavailable` instead of each waiting for
/// a connect timeout. After `maxLifetime` the connection is replaced.
final class MySQLLink: Sendable {
    private let queue: DispatchQueue
    private let settings: MySQLConnection.Settings
    private let maxLifetime: Duration?
    let id: Int
    private let logger: Logger
    private let state: Confined
    private let closed = Atomic(false)

    /// The connection and its back-off. `@unchecked Sendable`: touched only on `queue`.
    private final class Confined: @unchecked Sendable {
        var connection: MySQLConnection?
        var retryAt: ContinuousClock.Instant?
        var backoff: Duration = .milliseconds(250)
        var lastError = ""
    }

    init(settings: MySQLConnection.Settings, maxLifetime: Duration?, id: Int, logger: Logger) {
        self.settings = settings
        self.maxLifetime = maxLifetime
        self.id = id
        self.logger = logger
        self.state = Confined()
        self.queue = DispatchQueue(label: "swift-dtm.mysql.\(id)")
    }

    /// Runs `body` on the link's thread with its connection.
    func perform<T: Sendable>(_ body: @escaping @Sendable (MySQLConnection) throws -> T) async throws -> T {
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
            queue.async {
                continuation.resume(with: Result { try self.withConnection(body) })
            }
        }
    }

    /// Runs `body` on the link's thread, for a loop that stays there (the writer's).
    func start(_ body: @escaping @Sendable () -> Void) { queue.async(execute: body) }

    /// Runs `body` with the connection, opening one if needed; a connection `body` found lost is dropped. Only
    /// on the link's thread.
    func withConnection<T>(_ body: (MySQLConnection) throws -> T) throws -> T {
        dispatchPrecondition(condition: .onQueue(queue))
        let connection = try connection()
        do {
            return try body(connection)
        } catch let e as MySQLStoreError {
            if e.dropsConnection { drop(because: e.description) }
            throw e
        }
    }

    /// Forgets the connection (closing it), so that the next call opens another.
    func drop(because reason: String) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard state.connection != nil else { return }
        state.connection = nil
        logger.warning("database connection lost", metadata: ["connection": .stringConvertible(id), "error": .string(reason)])
    }

    private func connection() throws(MySQLStoreError) -> MySQLConnection {
        if closed.load(ordering: .acquiring) { throw .closed }
        let now = ContinuousClock.now
        if let c = state.connection {
            if let maxLifetime, now - c.openedAt > maxLifetime {
                state.connection = nil
            } else {
                return c
            }
        }
        if let at = state.retryAt, now < at { throw .unavailable(state.lastError) }
        do {
            let c = try MySQLConnection(settings)
            state.connection = c
            state.retryAt = nil
            state.backoff = .milliseconds(250)
            return c
        } catch {
            state.retryAt = ContinuousClock.now + state.backoff
            state.lastError = error.reason
            logger.warning(
                "cannot connect to the database",
                metadata: ["connection": .stringConvertible(id), "error": .string(error.description), "retry_in": .string("\(state.backoff)")])
            state.backoff = min(state.backoff * 2, .seconds(5))
            throw error
        }
    }

    /// Closes the connection once the calls already queued on the link have run; later calls fail with `closed`.
    func close() async {
        closed.store(true, ordering: .releasing)
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            queue.async {
                self.state.connection = nil
                continuation.resume()
            }
        }
    }
}
