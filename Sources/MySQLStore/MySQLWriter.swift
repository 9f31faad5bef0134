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
        /// The write as a part of a statement shared with others of its kind, while it may be one.
        var merge: MySQLMergeable?
        private var continuation: UnsafeContinuation<Void, Never>?
        init(single: Bool, bytes: Int, merge: MySQLMergeable?) {
            self.single = single
            self.bytes = bytes
            self.merge = merge
        }
        func run(_ c: MySQLConnection) throws {}
        func record(_ error: any Error) {}
        /// Records the outcome of the write done by a shared statement.
        func recordMerged() {}
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
        private let merged: T?
        private(set) var outcome: Result<T, any Error>?
        init(single: Bool, bytes: Int, merge: MySQLMergeable?, merged: T?, body: @escaping @Sendable (MySQLConnection) throws -> T) {
            self.body = body
            self.merged = merged
            super.init(single: single, bytes: bytes, merge: merge)
        }
        override func run(_ c: MySQLConnection) throws { outcome = .success(try body(c)) }
        override func record(_ error: any Error) { outcome = .failure(error) }
        override func recordMerged() { outcome = merged.map { .success($0) } }
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
    private let sql: MySQLSQL
    private let maxBatch: Int
    private let maxQueued: Int
    private let maxQueuedBytes: Int
    private let logger: Logger
    let commits = Atomic<Int>(0)
    /// How often a write is tried alone after a deadlock before its error is returned.
    private static let deadlockAttempts = 4

    init(links: [MySQLLink], sql: MySQLSQL, maxBatch: Int = 128, maxQueued: Int = 10_000, maxQueuedBytes: Int = 64 << 20, logger: Logger) {
        self.links = links
        self.sql = sql
        self.maxBatch = maxBatch
        self.maxQueued = maxQueued
        self.maxQueuedBytes = maxQueuedBytes
        self.logger = logger
        queue.withLock { $0.running = links.count }
        for link in links { link.start { self.loop(link) } }
    }

    /// Runs `body` inside a batch transaction and returns its result once that transaction committed. `single`:
    /// the body is one statement, which commits by itself when the job runs alone. `merge`: the same write, which
    /// may share a statement with others of its kind instead, and then returns `merged`.
    func write<T: Sendable>(
        single: Bool = false, bytes: Int = 0, merge: MySQLMergeable? = nil, merged: T? = nil,
        _ body: @escaping @Sendable (MySQLConnection) throws -> T
    ) async throws -> T {
        let job = TypedJob(single: single, bytes: bytes, merge: merge, merged: merged, body: body)
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
        var currentGroup: [Int] = []
        let (groups, single) = Self.plan(batch)
        do {
            try link.withConnection { c in
                try c.execute("BEGIN")
                for (kind, members) in groups {
                    currentGroup = members
                    try MySQLMerged.run(kind, members.compactMap { batch[$0].merge }, sql, on: c)
                }
                currentGroup = []
                for i in single {
                    current = i
                    do { try batch[i].run(c) } catch let e as MySQLStoreError { throw e } catch { answers[i] = error }
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
            } else if !currentGroup.isEmpty {
                // A shared statement was refused (a duplicate gid, or one write's values): its writes run again one
                // statement each, so that the next attempt finds which.
                for i in currentGroup { batch[i].merge = nil }
                commit(batch, on: link)
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
        for (_, members) in groups { for i in members { batch[i].recordMerged() } }
        for (job, answer) in zip(batch, answers) { job.finish(answer) }
    }

    /// Mergeable jobs of kinds that occur at least twice, on transactions no other mergeable job of the batch names,
    /// grouped by kind; the rest, in queue order. (A transaction's first write is its save, acknowledged before any
    /// other write of it is made, so writes on distinct transactions commute and a group may run first.)
    static func plan(_ batch: [Job]) -> (groups: [(MySQLMergeable.Kind, [Int])], single: [Int]) {
        var seen: [String: Int] = [:]
        for job in batch { if let m = job.merge { seen[m.gid, default: 0] += 1 } }
        var byKind: [[Int]] = Array(repeating: [], count: MySQLMergeable.Kind.allCases.count)
        var single: [Int] = []
        for (i, job) in batch.enumerated() {
            if let m = job.merge, seen[m.gid] == 1 { byKind[m.kind.rawValue].append(i) } else { single.append(i) }
        }
        var groups: [(MySQLMergeable.Kind, [Int])] = []
        for kind in MySQLMergeable.Kind.allCases {
            let members = byKind[kind.rawValue]
            if members.count >= 2 { groups.append((kind, members)) } else { single += members }
        }
        single.sort()
        return (groups, single)
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
