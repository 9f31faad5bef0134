import EventLoopSupport
import Logging
import PostgresNIO
import Synchronization

/// Group commit for PostgreSQL: concurrent writes queue here, and each of a few writer connections takes all that
/// wait (up to `maxBatch`) and commits them in one transaction, so that one WAL flush serves many sagas.
///
/// Every job is one statement that leaves nothing behind when its condition fails, so jobs need no savepoints.
/// If the server refuses a job's statement, that job fails with the refusal and the batch is rolled back and run
/// again without it, so that one bad job fails by itself. A lost connection fails the batch's jobs with
/// `unavailable`; when it is lost during COMMIT they are told the outcome is unknown, since the commit may have
/// happened.
///
/// Writes that need not be on disk before their caller goes on (`WriteDurability.ordered`) prefer the ordered
/// link, whose session commits with `synchronous_commit=off`: each such commit is in the WAL, in order, and visible
/// at once, and it is flushed with the next durable commit of any connection (or by the WAL writer within
/// `wal_writer_delay`), so a lone saga's branch statuses no longer wait for a WAL flush each. The other links take
/// durable writes first and, when they look for work, ordered ones up to a full batch (an idle durable link is not
/// woken for an ordered write).
final class PostgresWriter: Sendable {
    struct Job: Sendable {
        /// Runs the write alone.
        let run: @Sendable (PostgresLink) async throws -> Void
        let done: @Sendable ((any Error)?) -> Void
        let bytes: Int
        /// The write as a part of a statement shared with others of its kind, when it can be one.
        var merge: PostgresMergeable?
        /// On disk before `done` (else committed in order: `WriteDurability.ordered`).
        var durable = true
    }

    private struct Queue {
        /// Durable writes, for the durable links.
        var jobs: [Job] = []
        /// Ordered writes, for the ordered link or else the durable links.
        var ordered: [Job] = []
        var bytes = 0
        var idle: [CheckedContinuation<[Job], Never>] = []
        var idleOrdered: [CheckedContinuation<[Job], Never>] = []
        var closed = false
        var count: Int { jobs.count + ordered.count }
    }

    private let queue = Mutex(Queue())
    private let maxBatch: Int
    private let maxQueued: Int
    private let maxQueuedBytes: Int
    private let logger: Logger
    /// The statement of each mergeable kind.
    private let merged: [PostgresStatement]
    private let workers = Mutex<[Task<Void, Never>]>([])
    private let hasOrderedLink: Bool
    let commits = Atomic<Int>(0)

    /// `orderedLink`: a link whose session has `synchronous_commit=off`, for ordered writes only (nil: every link
    /// commits durably).
    init(
        links: [PostgresLink], orderedLink: PostgresLink? = nil, maxBatch: Int = 64, maxQueued: Int = 10_000, maxQueuedBytes: Int = 64 << 20,
        logger: Logger
    ) {
        self.merged = PostgresMergeable.Kind.allCases.map { PostgresStatement.merged($0) }
        self.maxBatch = maxBatch
        self.maxQueued = maxQueued
        self.maxQueuedBytes = maxQueuedBytes
        self.logger = logger
        self.hasOrderedLink = orderedLink != nil
        workers.withLock { tasks in
            // Each writer runs on its connection's loop: a statement's answer resumes it there, with no thread hop.
            tasks = links.map { link in Task(executorPreference: EventLoopTaskExecutor(eventLoop: link.eventLoop)) { await self.work(link, ordered: false) } }
            if let orderedLink {
                tasks.append(Task(executorPreference: EventLoopTaskExecutor(eventLoop: orderedLink.eventLoop)) { await self.work(orderedLink, ordered: true) })
            }
        }
    }

    /// Runs `body` inside a batch and returns its result once the batch committed.
    func write<T: Sendable>(bytes: Int = 0, durable: Bool = true, _ body: @escaping @Sendable (PostgresLink) async throws -> T) async throws -> T {
        let result = Mutex<T?>(nil)
        try await submit(bytes: bytes, merge: nil, durable: durable) { link in
            let value = try await body(link)
            result.withLock { $0 = value }
        }
        guard let value = result.withLock({ $0.take() }) else { throw PostgresStoreError.unavailable("write finished without a result") }
        return value
    }

    /// A write that returns nothing and may share a statement with others of its kind (`merge`); `body` runs it
    /// alone when it does not.
    func write(
        bytes: Int = 0, merge: PostgresMergeable?, durable: Bool = true, _ body: @escaping @Sendable (PostgresLink) async throws -> Void
    ) async throws {
        try await submit(bytes: bytes, merge: merge, durable: durable, body)
    }

    private func submit(
        bytes: Int, merge: PostgresMergeable?, durable: Bool, _ run: @escaping @Sendable (PostgresLink) async throws -> Void
    ) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let job = Job(
                run: run,
                done: { error in
                    if let error { continuation.resume(throwing: error) } else { continuation.resume() }
                }, bytes: bytes, merge: merge, durable: durable)
            if let refusal = enqueue(job) { continuation.resume(throwing: refusal) }
        }
    }

    private func enqueue(_ job: Job) -> PostgresStoreError? {
        enum Outcome {
            case refused(PostgresStoreError)
            case handed(CheckedContinuation<[Job], Never>)
            case queued
        }
        let outcome = queue.withLock { q -> Outcome in
            if q.closed { return .refused(.closed) }
            if q.count >= maxQueued { return .refused(.queueFull("\(maxQueued) writes")) }
            if q.count > 0 && q.bytes + job.bytes > maxQueuedBytes { return .refused(.queueFull("\(maxQueuedBytes) bytes")) }
            if !job.durable && hasOrderedLink {
                // For the ordered link; the durable links take it only when they look for work anyway.
                if let worker = q.idleOrdered.popLast() { return .handed(worker) }
                q.ordered.append(job)
            } else {
                if let worker = q.idle.popLast() { return .handed(worker) }
                q.jobs.append(job)
            }
            q.bytes += job.bytes
            return .queued
        }
        switch outcome {
        case .refused(let e): return e
        case .handed(let worker): worker.resume(returning: [job])
        case .queued: break
        }
        return nil
    }

    /// The next batch; empty when the writer is closed and drained. The ordered link takes ordered writes only;
    /// the others take durable writes first, then ordered ones up to `maxBatch`.
    private func next(ordered: Bool) async -> [Job] {
        await withCheckedContinuation { (continuation: CheckedContinuation<[Job], Never>) in
            let batch = queue.withLock { q -> [Job]? in
                var batch: [Job] = []
                if !ordered, !q.jobs.isEmpty {
                    let n = min(maxBatch, q.jobs.count)
                    batch = Array(q.jobs.prefix(n))
                    q.jobs.removeFirst(n)
                }
                if batch.count < maxBatch, !q.ordered.isEmpty {
                    let n = min(maxBatch - batch.count, q.ordered.count)
                    batch += q.ordered.prefix(n)
                    q.ordered.removeFirst(n)
                }
                if !batch.isEmpty {
                    q.bytes -= batch.reduce(0) { $0 + $1.bytes }
                    return batch
                }
                if q.closed { return [] }
                if ordered { q.idleOrdered.append(continuation) } else { q.idle.append(continuation) }
                return nil
            }
            if let batch { continuation.resume(returning: batch) }
        }
    }

    private func work(_ link: PostgresLink, ordered: Bool) async {
        while true {
            let batch = await next(ordered: ordered)
            if batch.isEmpty { return }
            await commit(batch, on: link)
        }
    }

    private func commit(_ batch: [Job], on link: PostgresLink) async {
        if batch.count == 1 {
            // One statement commits by itself: no BEGIN and COMMIT round trips.
            do {
                try await batch[0].run(link)
                commits.add(1, ordering: .relaxed)
                batch[0].done(nil)
            } catch {
                batch[0].done(error)
            }
            return
        }
        // A job's own answer (a compare-and-set that did not match) is kept for it; its statement changed nothing,
        // so the batch still commits. Only the server refusing a statement aborts the batch.
        var answers = [(any Error)?](repeating: nil, count: batch.count)
        let (groups, single) = Self.plan(batch)
        var current: Int?
        var currentGroup: [Int] = []
        do {
            _ = try await link.run(.begin, [])
            for (kind, members) in groups {
                currentGroup = members
                let rows = try await link.run(merged[kind.rawValue], PostgresMergedSQL.values(kind, members.compactMap { batch[$0].merge }))
                try Self.distribute(rows, to: members, of: batch, into: &answers)
            }
            currentGroup = []
            for i in single {
                current = i
                do {
                    try await batch[i].run(link)
                } catch let e as PostgresStoreError {
                    throw e
                } catch {
                    answers[i] = error
                }
            }
        } catch let e as PostgresStoreError where !e.dropsConnection {
            do {
                _ = try await link.run(.rollback, [])
            } catch {
                fail(batch, PostgresStoreError.from(error))
                return
            }
            logger.debug(
                "write refused; its batch rolled back and runs again", metadata: ["error": .string(e.description), "jobs": .stringConvertible(batch.count)])
            if e.isRetryable {
                // The server asks for the transaction again (deadlock, serialization failure): every write alone.
                for job in batch { await commit([job], on: link) }
            } else if !currentGroup.isEmpty {
                // A shared statement was refused, for one of its writes: they run again one statement each, so
                // that the next attempt finds which.
                var again = batch
                for i in currentGroup { again[i].merge = nil }
                await commit(again, on: link)
            } else if let current {
                // The server refused the statement of job `current`: that job fails with the refusal, and the
                // others run again in a new batch.
                batch[current].done(e)
                var rest = batch
                rest.remove(at: current)
                if !rest.isEmpty { await commit(rest, on: link) }
            } else {
                for job in batch { await commit([job], on: link) }
            }
            return
        } catch {
            fail(batch, PostgresStoreError.from(error))
            return
        }
        do {
            _ = try await link.run(.commit, [])
        } catch {
            let e = PostgresStoreError.from(error)
            if case .unavailable(let why, _) = e {
                fail(batch, PostgresStoreError.unavailable(why, outcomeUnknown: true))
            } else {
                fail(batch, e)
            }
            return
        }
        commits.add(1, ordering: .relaxed)
        for (job, answer) in zip(batch, answers) { job.done(answer) }
    }

    /// Mergeable jobs of kinds that occur at least twice, on transactions no other job of the batch names, grouped
    /// by kind; the rest, in queue order. (Writes on distinct transactions commute, so running a group before the
    /// jobs queued between its members changes no outcome.)
    static func plan(_ batch: [Job]) -> (groups: [(PostgresMergeable.Kind, [Int])], single: [Int]) {
        var seen: [String: Int] = [:]
        for job in batch { if let m = job.merge { seen[m.gid, default: 0] += 1 } }
        var byKind: [[Int]] = Array(repeating: [], count: PostgresMergeable.Kind.allCases.count)
        var single: [Int] = []
        for (i, job) in batch.enumerated() {
            if let m = job.merge, seen[m.gid] == 1 { byKind[m.kind.rawValue].append(i) } else { single.append(i) }
        }
        var groups: [(PostgresMergeable.Kind, [Int])] = []
        for kind in PostgresMergeable.Kind.allCases {
            let members = byKind[kind.rawValue]
            if members.count >= 2 { groups.append((kind, members)) } else { single += members }
        }
        single.sort()
        return (groups, single)
    }

    /// Each write's answer from its row (ordinality, flag, flag) of a shared statement.
    private static func distribute(_ rows: [PostgresRow], to members: [Int], of batch: [Job], into answers: inout [(any Error)?]) throws {
        guard rows.count == members.count else {
            throw PostgresStoreError.server(sqlState: "XX000", message: "shared statement returned \(rows.count) rows for \(members.count) writes")
        }
        for (row, i) in zip(rows, members) {
            let c = PostgresColumns(row)
            answers[i] = batch[i].merge?.verdict(try c.bool(1), try c.bool(2))
        }
    }

    private func fail(_ batch: [Job], _ error: PostgresStoreError) {
        for job in batch { job.done(error) }
    }

    /// Stops taking writes, lets the writers finish what is queued, and waits for them.
    func close() async {
        let idle = queue.withLock { q -> [CheckedContinuation<[Job], Never>] in
            q.closed = true
            defer { q.idle = []; q.idleOrdered = [] }
            return q.idle + q.idleOrdered
        }
        for worker in idle { worker.resume(returning: []) }
        for task in workers.withLock({ $0 }) { await task.value }
    }
}
