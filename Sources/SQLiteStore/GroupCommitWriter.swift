import Dispatch
import Logging
import Synchronization

/// The single writer of a SQLite database, with group commit.
///
/// Callers queue write jobs; the writer's own thread takes every job that queued up while the previous COMMIT
/// ran and applies them in one transaction, each inside its own SAVEPOINT so that one job's error (a failed
/// compare-and-set, a unique conflict) undoes only that job. Each caller resumes only after the COMMIT that holds
/// its job returned: with `synchronous=FULL` that is after fsync, so an acknowledged write survives a crash. A batch
/// of `ordered` jobs only (none durable) is committed with `synchronous=NORMAL`: written to the WAL in order, which a
/// crash of this process keeps, and fsynced with the next durable batch.
///
/// A write that finds the connection free and nothing queued commits on the caller's own thread: waking the writer
/// thread and being woken by it again would cost two thread switches and most of a lone write's CPU, and there is
/// no batch to wait for. Whoever commits holds the connection (`Queue.busy`); writes arriving meanwhile queue for
/// the writer thread, so under load batching is as before.
final class GroupCommitWriter: Sendable {
    /// A queued job: `run` executes inside the batch transaction, on the writer thread or its caller's; `finish` is called
    /// once after COMMIT with the job's outcome. One object per write (the body, its outcome and the caller's
    /// continuation), where closures and a result box made four.
    ///
    /// The caller keeps its own reference across the wait and reads the outcome from the job afterwards; the
    /// writer gives up its reference before resuming the caller. The job, its body and the row values the
    /// body captured are thus freed on the caller's thread, where they were allocated (an allocator frees
    /// another thread's memory on a slower path; with glibc that path showed in profiles, with mimalloc the
    /// difference was not measurable).
    /// `@unchecked Sendable`: made by the caller, touched only by whoever holds the connection until `finish`,
    /// then only by the caller.
    private class Job: @unchecked Sendable {
        let savepoint: Bool
        /// On disk before the caller resumes (else only written, in order: `WriteDurability.ordered`).
        var durable = true
        /// What the job's row values weigh, counted against `maxQueuedBytes` while it is queued.
        let bytes: Int
        private var continuation: UnsafeContinuation<Void, Never>?
        init(savepoint: Bool, bytes: Int) {
            self.savepoint = savepoint
            self.bytes = bytes
        }
        func run(_ db: SQLiteConnection) throws {}
        func record(_ error: any Error) {}

        func setContinuation(_ continuation: UnsafeContinuation<Void, Never>) { self.continuation = continuation }

        /// Records `error` (nil: the job's own outcome stands) and returns the continuation to resume, once.
        func finish(_ error: (any Error)?) -> UnsafeContinuation<Void, Never>? {
            if let error { record(error) }
            defer { continuation = nil }
            return continuation
        }
    }

    private final class TypedJob<T: Sendable>: Job, @unchecked Sendable {
        private let body: @Sendable (SQLiteConnection) throws -> T
        private(set) var outcome: Result<T, any Error>?

        init(savepoint: Bool, bytes: Int, body: @escaping @Sendable (SQLiteConnection) throws -> T) {
            self.body = body
            super.init(savepoint: savepoint, bytes: bytes)
        }

        override func run(_ db: SQLiteConnection) throws { outcome = .success(try body(db)) }
        override func record(_ error: any Error) { outcome = .failure(error) }
    }

    private struct Queue {
        /// Each holds one reference of its own (passRetained), given up before its caller is resumed.
        var jobs: [Unmanaged<Job>] = []
        /// Sum of the queued jobs' `bytes`.
        var bytes = 0
        var closed = false
        /// The connection is in use: by the writer thread's batch, or by a caller committing its own write.
        var busy = false
    }

    private let queue = Mutex(Queue())
    private let wakeup = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    /// Most jobs in one transaction; the rest wait for the next one.
    let maxBatch: Int
    /// Most jobs queued; beyond it writes are refused with an error instead of growing memory without bound.
    let maxQueued: Int
    /// Most bytes of row values queued (large bodies fill memory long before the job count does); a job alone in
    /// the queue is always taken.
    let maxQueuedBytes: Int
    private let logger: Logger
    /// Used only by whoever set `Queue.busy`, under that flag (the queue's lock orders the hand-overs).
    private let connection: SQLiteConnection
    /// Transactions committed so far (tests check that concurrent writes share commits).
    let commitCount = Atomic<Int>(0)
    /// Of those, the ones a caller committed on its own thread.
    let inlineCommitCount = Atomic<Int>(0)

    init(connection: SQLiteConnection, maxBatch: Int = 512, maxQueued: Int = 100_000, maxQueuedBytes: Int = 256 << 20, logger: Logger) {
        self.maxBatch = maxBatch
        self.maxQueued = maxQueued
        self.maxQueuedBytes = maxQueuedBytes
        self.logger = logger
        self.connection = connection
        let thread = DispatchQueue(label: "swift-dtm.sqlite-writer")
        thread.async { [self] in
            self.loop()
            self.stopped.signal()
        }
    }

    /// Runs `body` in the next batch transaction and returns its value once that transaction is committed.
    ///
    /// `savepoint: false` saves the SAVEPOINT/RELEASE pair for a job that makes at most one change, with one
    /// statement, and never throws after that statement changed something: SQLite undoes a failed statement by
    /// itself, so such a job cannot leave a partial change behind for the batch to commit.
    func write<T: Sendable>(
        savepoint: Bool = true, bytes: Int = 0, durable: Bool = true, _ body: @escaping @Sendable (SQLiteConnection) throws -> T
    ) async throws -> T {
        let job = TypedJob(savepoint: savepoint, bytes: bytes, body: body)
        job.durable = durable
        let mine = queue.withLock { q -> Bool in
            guard !q.closed, !q.busy, q.jobs.isEmpty else { return false }
            q.busy = true
            return true
        }
        if mine {
            commit([Unmanaged<Job>.passRetained(job)])
            inlineCommitCount.add(1, ordering: .relaxed)
            // Writes that queued meanwhile (or a close) are the writer thread's.
            if queue.withLock({ q in
                q.busy = false; return !q.jobs.isEmpty || q.closed
            }) {
                wakeup.signal()
            }
            guard let outcome = job.outcome else { throw GroupCommitError.noOutcome }
            return try outcome.get()
        }
        await withUnsafeContinuation { continuation in
            job.setContinuation(continuation)
            let refusal: (any Error)? = queue.withLock { q in
                if q.closed { return GroupCommitError.closed }
                if q.jobs.count >= maxQueued { return GroupCommitError.queueFull("\(maxQueued) jobs") }
                if !q.jobs.isEmpty && q.bytes + bytes > maxQueuedBytes { return GroupCommitError.queueFull("\(maxQueuedBytes) bytes") }
                q.jobs.append(Unmanaged<Job>.passRetained(job))
                q.bytes += bytes
                return nil
            }
            if let refusal { job.finish(refusal)?.resume() } else { wakeup.signal() }
        }
        // Read after the wait: the caller's reference is the last one (see `Job`).
        guard let outcome = job.outcome else { throw GroupCommitError.noOutcome }
        return try outcome.get()
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

    /// Whether the connection commits with `synchronous=FULL` now (the store opens it so).
    /// Touched only by whoever holds the connection.
    private nonisolated(unsafe) var synchronousFull = true

    private func loop() {
        // Two buffers trade places: the queue's jobs become the batch, and the emptied batch (its capacity kept)
        // becomes the queue.
        var batch: [Unmanaged<Job>] = []
        while true {
            let closed = queue.withLock { q -> Bool in
                // A caller committing its own write signals when it is done and writes are waiting.
                if q.busy { return false }
                if q.jobs.count <= maxBatch {
                    swap(&batch, &q.jobs)
                } else {
                    batch.append(contentsOf: q.jobs.prefix(maxBatch))
                    q.jobs.removeFirst(maxBatch)
                }
                for job in batch { q.bytes -= job.takeUnretainedValue().bytes }
                q.busy = !batch.isEmpty
                return q.closed
            }
            if batch.isEmpty {
                if closed { return }
                wakeup.wait()
                continue
            }
            commit(batch)
            batch.removeAll(keepingCapacity: true)
            queue.withLock { $0.busy = false }
        }
    }

    /// Commits `batch` on the connection; the caller holds it (`Queue.busy`).
    private func commit(_ batch: [Unmanaged<Job>]) {
        let db = connection
        var errors = [(any Error)?](repeating: nil, count: batch.count)
        do {
            // Outside a transaction, as SQLite requires; a change of mode only when the batch asks for another.
            let full = batch.contains { $0.takeUnretainedValue().durable }
            if full != synchronousFull {
                try db.execute(full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL")
                synchronousFull = full
            }
            try db.statement(.begin).run([])
            let savepoint = try db.statement(.savepoint)
            let release = try db.statement(.release)
            let rollbackTo = try db.statement(.rollbackTo)
            for (i, unmanaged) in batch.enumerated() {
                let job = unmanaged.takeUnretainedValue()
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
            logger.error(
                "group commit failed; every write of the batch is refused", metadata: ["error": .string("\(error)"), "jobs": .stringConvertible(batch.count)])
            try? db.execute("ROLLBACK")
            for i in errors.indices { errors[i] = error }
        }
        for (unmanaged, error) in zip(batch, errors) {
            let continuation = unmanaged.takeUnretainedValue().finish(error)
            unmanaged.release()  // the waiting caller still holds the job
            continuation?.resume()
        }
    }
}

/// Why the writer refused or lost a write (SQLite's own failures are `SQLiteError`s).
package enum GroupCommitError: Error, CustomStringConvertible, Sendable {
    case closed
    /// Too many writes (or bytes) wait already: the caller may try again.
    case queueFull(String)
    /// A job ended without a result: a bug in the writer.
    case noOutcome

    package var description: String {
        switch self {
        case .closed: "the store is closed"
        case .queueFull(let limit): "write queue is full (\(limit)); try again"
        case .noOutcome: "write finished without an outcome"
        }
    }
}
