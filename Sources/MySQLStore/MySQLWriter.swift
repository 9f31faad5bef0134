import Dispatch
import Logging
import Synchronization

/// Group commit for MySQL: concurrent writes queue here, and each of a few writer connections (each on its own
/// thread) takes all that wait, up to `maxBatch`, and commits them in one transaction, so that one redo-log flush
/// serves many sagas.
///
/// A job's body runs on the writer thread inside the batch's transaction. Its own answers (a compare-and-set that
/// did not match, a duplicate) are thrown as errors other than `MySQLStoreError` and must be decided before the
/// job changes anything, so the batch commits without its changes. If the server refuses a job's statement, the
/// batch is rolled back, that job fails with the refusal and the others run again, so one bad write fails alone. A
/// deadlock runs every write of the batch again by itself. A lost connection fails the batch with `unavailable`;
/// when it is lost during COMMIT the outcome is unknown, since the commit may have happened.
final class MySQLWriter: Sendable {
    /// One write. `@unchecked Sendable`: made by the caller, touched only by one writer thread until `finish`,
    /// then only by the caller.
    class Job: @unchecked Sendable {
        /// One statement that commits by itself: run alone, it needs no BEGIN and COMMIT.
        let single: Bool
        let bytes: Int
        private var continuation: UnsafeContinuation<Void, Never>?
        init(single: Bool, bytes: Int) {
            self.single = single
            self.bytes = bytes
        }
        func run(_ c: MySQLConnection) throws {}
        func record(_ error: any Error) {}
        func setContinuation(_ c: UnsafeContinuation<Void, Never>) { continuation = c }
        /// Records `error` (nil: the job's own outcome stands) and resumes the caller, once.
        func finish(_ error: (any Error)?) {
            if let error { record(error) }
            let c = continuation
            continuation = nil
            c?.resume()
        }
    }

    private final class TypedJob<T: Sendable>: Job, @unchecked Sendable {
        private let body: @Sendable (MySQLConnection) throws -> T
        private(set) var outcome: Result<T, any Error>?
        init(single: Bool, bytes: Int, body: @escaping @Sendable (MySQLConnection) throws -> T) {
            self.body = body
            super.init(single: single, bytes: bytes)
        }
        override func run(_ c: MySQLConnection) throws { outcome = .success(try body(c)) }
        override func record(_ error: any Error) { outcome = .failure(error) }
    }

    private struct Queue {
        var jobs: [Job] = []
        var bytes = 0
        var closed = false
        var running = 0
    }

    private let queue = Mutex(Queue())
    private let wakeup = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    private let links: [MySQLLink]
    private let maxBatch: Int
    private let maxQueued: Int
    private let maxQueuedBytes: Int
    private let logger: Logger
    let commits = Atomic<Int>(0)
    /// How often a write is tried alone after a deadlock before its error is returned.
    private static let deadlockAttempts = 4

    init(links: [MySQLLink], maxBatch: Int = 128, maxQueued: Int = 10_000, maxQueuedBytes: Int = 64 << 20, logger: Logger) {
        self.links = links
        self.maxBatch = maxBatch
        self.maxQueued = maxQueued
        self.maxQueuedBytes = maxQueuedBytes
        self.logger = logger
        queue.withLock { $0.running = links.count }
        for link in links { link.start { self.loop(link) } }
    }

    /// Runs `body` inside a batch transaction and returns its result once that transaction committed. `single`:
    /// the body is one statement, which commits by itself when the job runs alone.
    func write<T: Sendable>(single: Bool = false, bytes: Int = 0, _ body: @escaping @Sendable (MySQLConnection) throws -> T) async throws -> T {
        let job = TypedJob(single: single, bytes: bytes, body: body)
        await withUnsafeContinuation { continuation in
            job.setContinuation(continuation)
            let refusal: MySQLStoreError? = queue.withLock { q in
                if q.closed { return .closed }
                if q.jobs.count >= maxQueued { return .queueFull("\(maxQueued) writes") }
                if !q.jobs.isEmpty && q.bytes + bytes > maxQueuedBytes { return .queueFull("\(maxQueuedBytes) bytes") }
                q.jobs.append(job)
                q.bytes += bytes
                return nil
            }
            if let refusal { job.finish(refusal) } else { wakeup.signal() }
        }
        guard let outcome = job.outcome else { throw MySQLStoreError.unavailable("write finished without a result") }
        return try outcome.get()
    }

    private func loop(_ link: MySQLLink) {
        while true {
            wakeup.wait()
            let (batch, closed) = queue.withLock { q -> ([Job], Bool) in
                let n = min(maxBatch, q.jobs.count)
                let batch = Array(q.jobs.prefix(n))
                q.jobs.removeFirst(n)
                for job in batch { q.bytes -= job.bytes }
                // More left: another writer (or this one, next time round) takes them.
                if !q.jobs.isEmpty { wakeup.signal() }
                return (batch, q.closed)
            }
            if batch.isEmpty {
                if closed { break }
                continue
            }
            commit(batch, on: link)
        }
        wakeup.signal()
        let last = queue.withLock { q in
            q.running -= 1
            return q.running == 0
        }
        if last { stopped.signal() }
    }

    private func commit(_ batch: [Job], on link: MySQLLink) {
        if batch.count == 1 {
            alone(batch[0], on: link)
            return
        }
        var answers = [(any Error)?](repeating: nil, count: batch.count)
        var current = 0
        do {
            try link.withConnection { c in
                try c.execute("BEGIN")
                for (i, job) in batch.enumerated() {
                    current = i
                    do { try job.run(c) } catch let e as MySQLStoreError { throw e } catch { answers[i] = error }
                }
                current = -1
                do {
                    try c.execute("COMMIT")
                } catch let e as MySQLStoreError where e.dropsConnection {
                    throw MySQLStoreError.unavailable(e.reason, outcomeUnknown: true)
                }
            }
        } catch let e as MySQLStoreError {
            if current < 0 || e.dropsConnection {
                for job in batch { job.finish(e) }
                return
            }
            rollback(on: link)
            if e.isRetryable {
                logger.debug("deadlock; every write of the batch runs again alone", metadata: ["jobs": .stringConvertible(batch.count)])
                for job in batch { alone(job, on: link) }
            } else {
                logger.debug("write refused; the others of its batch run again", metadata: ["error": .string(e.description)])
                batch[current].finish(e)
                var rest = batch
                rest.remove(at: current)
                commit(rest, on: link)
            }
            return
        } catch {
            for job in batch { job.finish(error) }
            return
        }
        commits.add(1, ordering: .relaxed)
        for (job, answer) in zip(batch, answers) { job.finish(answer) }
    }

    /// One write by itself (a batch of one, or after a deadlock), tried again while the server reports deadlocks.
    private func alone(_ job: Job, on link: MySQLLink) {
        var attempt = 1
        while true {
            var answer: (any Error)?
            var sent = false
            var committing = false
            do {
                try link.withConnection { c in
                    sent = true
                    if !job.single { try c.execute("BEGIN") }
                    do { try job.run(c) } catch let e as MySQLStoreError { throw e } catch { answer = error }
                    committing = true
                    if !job.single { try c.execute("COMMIT") }
                }
                commits.add(1, ordering: .relaxed)
                job.finish(answer)
                return
            } catch let e as MySQLStoreError {
                // A statement that commits by itself, or a COMMIT, lost with its connection may have taken effect.
                let unknown = e.dropsConnection && sent && (committing || job.single)
                if !e.dropsConnection && !job.single { rollback(on: link) }
                if e.isRetryable && attempt < Self.deadlockAttempts {
                    attempt += 1
                    continue
                }
                job.finish(unknown ? MySQLStoreError.unavailable(e.reason, outcomeUnknown: true) : e)
                return
            } catch {
                job.finish(error)
                return
            }
        }
    }

    private func rollback(on link: MySQLLink) {
        do {
            try link.withConnection { c in try c.execute("ROLLBACK") }
        } catch {
            link.drop(because: "ROLLBACK failed: \(error)")
        }
    }

    /// Stops taking writes, lets the writers finish what is queued, and waits for them.
    func close() async {
        let first = queue.withLock { q in
            defer { q.closed = true }
            return !q.closed
        }
        guard first else { return }
        wakeup.signal()
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            DispatchQueue.global().async {
                self.stopped.wait()
                continuation.resume()
            }
        }
    }
}
