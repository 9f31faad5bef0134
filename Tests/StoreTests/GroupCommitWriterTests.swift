import Dispatch
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
        // Hold the writer thread inside a job, so that the next jobs stay queued.
        let holding = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let blocker = Task {
            try await writer.write { _ in
                holding.signal(); release.wait()
            }
        }
        holding.wait()
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
}
