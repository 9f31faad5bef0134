import Dispatch
import Logging
import Synchronization

/// The single writer of a SQLite database, with group commit.
///
/// Callers queue write jobs; the writer's own thread takes every job that queued up while the previous COMMIT
/// ran and applies them in one transaction, each inside its own SAVEPOINT so that one job's error (a failed
/// compare-and-set, a unique conflict) undoes only that job. Each caller resumes only after the COMMIT that holds
/// its job returned: with `synchronous=FULL` that is after fsync, so an acknowledged write survives a crash.
final class GroupCommitWriter: Sendable {
    /// A queued job: `run` executes inside the batch transaction on the writer thread; `finish` is called
    /// once after COMMIT with the job's outcome. One object per write (the body, its result and the caller's
    /// continuation), where closures and a result box made four.
    /// `@unchecked Sendable`: made by the caller, then touched only by the writer thread until `finish`.
    private class Job: @unchecked Sendable {
        let savepoint: Bool
        init(savepoint: Bool) { self.savepoint = savepoint }
        func run(_ db: SQLiteConnection) throws {}
        func finish(_ error: (any Error)?) {}
    }

    private final class TypedJob<T: Sendable>: Job, @unchecked Sendable {
        private let body: @Sendable (SQLiteConnection) throws -> T
        private let continuation: UnsafeContinuation<T, any Error>
        private var value: T?

        init(savepoint: Bool, body: @escaping @Sendable (SQLiteConnection) throws -> T, continuation: UnsafeContinuation<T, any Error>) {
            self.body = body
            self.continuation = continuation
            super.init(savepoint: savepoint)
        }

        override func run(_ db: SQLiteConnection) throws { value = try body(db) }

        /// Called exactly once per job (after its COMMIT, or at once when the job is refused).
        override func finish(_ error: (any Error)?) {
            if let error { continuation.resume(throwing: error) } else { continuation.resume(returning: value!) }
        }
    }

    private struct Queue {
        var jobs: [Job] = []
        var closed = false
    }

    private let queue = Mutex(Queue())
    private let wakeup = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    /// Most jobs in one transaction; the rest wait for the next one.
    let maxBatch: Int
    /// Most jobs queued; beyond it writes are refused with an error instead of growing memory without bound.
    let maxQueued: Int
    private let logger: Logger
    /// Transactions committed so far (tests check that concurrent writes share commits).
    let commitCount = Atomic<Int>(0)

    init(connection: SQLiteConnection, maxBatch: Int = 512, maxQueued: Int = 100_000, logger: Logger) {
        self.maxBatch = maxBatch
        self.maxQueued = maxQueued
        self.logger = logger
        let thread = DispatchQueue(label: "swift-dtm.sqlite-writer")
        thread.async { [self] in
            self.loop(connection)
            self.stopped.signal()
        }
    }

    /// Runs `body` in the next batch transaction and returns its value once that transaction is committed.
    ///
    /// `savepoint: false` saves the SAVEPOINT/RELEASE pair for a job that makes at most one change, with one
    /// statement, and never throws after that statement changed something: SQLite undoes a failed statement by
    /// itself, so such a job cannot leave a partial change behind for the batch to commit.
    func write<T: Sendable>(savepoint: Bool = true, _ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await withUnsafeThrowingContinuation { continuation in
            let job = TypedJob(savepoint: savepoint, body: body, continuation: continuation)
            let refusal: (any Error)? = queue.withLock { q in
                if q.closed { return SQLiteError(code: 21, message: "the store is closed", sql: "") }
                if q.jobs.count >= maxQueued {
                    return SQLiteError(code: 5, message: "write queue is full (\(maxQueued) jobs); try again", sql: "")
                }
                q.jobs.append(job)
                return nil
            }
            if let refusal { job.finish(refusal) } else { wakeup.signal() }
        }
    }

    /// Stops taking jobs, finishes the queued ones and waits for the writer thread to end.
    func close() {
        let alreadyClosed = queue.withLock { q in
            defer { q.closed = true }
            return q.closed
        }
        guard !alreadyClosed else { return }
        wakeup.signal()
        stopped.wait()
    }

    private func loop(_ db: SQLiteConnection) {
        // Two buffers trade places: the queue's jobs become the batch, and the emptied batch (its capacity kept)
        // becomes the queue.
        var batch: [Job] = []
        while true {
            let closed = queue.withLock { q -> Bool in
                if q.jobs.count <= maxBatch {
                    swap(&batch, &q.jobs)
                } else {
                    batch.append(contentsOf: q.jobs.prefix(maxBatch))
                    q.jobs.removeFirst(maxBatch)
                }
                return q.closed
            }
            if batch.isEmpty {
                if closed { return }
                wakeup.wait()
                continue
            }
            commit(batch, db)
            batch.removeAll(keepingCapacity: true)
        }
    }

    private func commit(_ batch: [Job], _ db: SQLiteConnection) {
        var errors = [(any Error)?](repeating: nil, count: batch.count)
        do {
            try db.statement(.begin).run([])
            let savepoint = try db.statement(.savepoint)
            let release = try db.statement(.release)
            let rollbackTo = try db.statement(.rollbackTo)
            for (i, job) in batch.enumerated() {
                guard job.savepoint else {
                    do { try job.run(db) } catch { errors[i] = error }
                    continue
                }
                try savepoint.run([])
                do {
                    try job.run(db)
                } catch {
                    errors[i] = error
                    try rollbackTo.run([])
                }
                try release.run([])
            }
            try db.statement(.commit).run([])
            commitCount.add(1, ordering: .relaxed)
        } catch {
            logger.error("group commit failed; every write of the batch is refused", metadata: ["error": .string("\(error)"), "jobs": .stringConvertible(batch.count)])
            try? db.execute("ROLLBACK")
            for i in errors.indices { errors[i] = error }
        }
        for (job, error) in zip(batch, errors) { job.finish(error) }
    }
}
