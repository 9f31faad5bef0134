import Dispatch
import Glibc
import Logging
@testable import SQLiteStore
import Testing

@Suite("group commit writer")
struct GroupCommitWriterTests {
    @Test("the queue is bounded in bytes as well as in jobs: a write beyond the bytes is refused, a lone one is taken")
    func byteBound() async throws {
        let writer = GroupCommitWriter(
            connection: try SQLiteConnection(path: TempDB.path(), readOnly: false), maxQueuedBytes: 1000, logger: Logger(label: "test"))
        defer { writer.close() }
        // Hold the connection inside a job, so that the next jobs stay queued.
        let (blocker, release) = holdConnection(writer)
        let first = Task { try await writer.write(bytes: 600) { _ in 1 } }
        try await Task.sleep(for: .milliseconds(100))  // queued behind the blocker
        do {
            _ = try await writer.write(bytes: 600) { _ in 2 }
            Issue.record("a write past the byte bound was queued")
        } catch let error as GroupCommitError {
            guard case .queueFull = error else { Issue.record("\(error)"); return }
        }
        let small = Task { try await writer.write(bytes: 100) { _ in 3 } }
        try await Task.sleep(for: .milliseconds(100))
        release.signal()
        try await blocker.value
        #expect(try await first.value == 1)
        #expect(try await small.value == 3)
        // Drained: a write larger than the bound is taken when it is alone.
        #expect(try await writer.write(bytes: 5000) { _ in 4 } == 4)
    }

    @Test("a write that finds the writer idle commits on the caller's thread; one that finds it busy queues and is batched")
    func inlineWhenIdle() async throws {
        let writer = GroupCommitWriter(connection: try SQLiteConnection(path: TempDB.path(), readOnly: false), logger: Logger(label: "test"))
        defer { writer.close() }
        try await writer.write { db in try db.execute("CREATE TABLE t (v INTEGER)") }
        let caller = ThreadID.current
        let ran = try await writer.write(durable: false) { db in
            try db.execute("INSERT INTO t VALUES (1)")
            return ThreadID.current
        }
        #expect(ran == caller, "the lone write ran on its caller's thread")
        #expect(writer.inlineCommitCount.load(ordering: .relaxed) == 2)
        #expect(writer.commitCount.load(ordering: .relaxed) == 2)

        // Hold the connection in an inline write; the writes arriving meanwhile queue and share one commit.
        let (blocker, release) = holdConnection(writer)
        let queued = (0..<5).map { i in
            Task {
                try await writer.write { db in
                    try db.execute("INSERT INTO t VALUES (\(i + 10))"); return i
                }
            }
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(writer.commitCount.load(ordering: .relaxed) == 2, "the queued writes wait for the connection")
        release.signal()
        try await blocker.value
        for (i, task) in queued.enumerated() { #expect(try await task.value == i) }
        #expect(writer.inlineCommitCount.load(ordering: .relaxed) == 3, "only the first found the connection free")
        #expect(writer.commitCount.load(ordering: .relaxed) == 4, "the five queued writes shared the writer thread's one commit")
        #expect(try await writer.write { db in try db.scalar("SELECT count(*) FROM t") } == 6)
    }
}

/// Starts a write that holds the writer's connection until `release` is signalled, and returns once it holds it. The
/// lone write commits on its caller's thread: a thread of its own here, so that its wait blocks none of Swift's few
/// cooperative threads.
private func holdConnection(_ writer: GroupCommitWriter) -> (Task<Void, any Error>, release: DispatchSemaphore) {
    let holding = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
    let blocker = Task(executorPreference: BlockingThread()) {
        try await writer.write { _ in
            holding.signal(); release.wait()
        }
    }
    holding.wait()
    return (blocker, release)
}

/// The calling thread.
private enum ThreadID {
    static var current: UInt { UInt(pthread_self()) }
}

/// Runs a task's jobs on a thread of its own, where a test may block without starving the cooperative pool.
private final class BlockingThread: TaskExecutor {
    private let queue = DispatchQueue(label: "test.blocking-thread")
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
