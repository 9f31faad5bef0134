import Logging
import DTMCore
import Foundation
@testable import SQLiteStore
import Testing

@Suite("SQLite store")
struct SQLiteStoreTests {
    @Test("64 concurrent writers under group commit lose nothing")
    func concurrentWriters() async throws {
        let path = try TempDB.path()
        let store = try SQLiteStore(path: path, logger: Logger(label: "test"))
        let writers = 64
        let perWriter = 20
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<writers {
                group.addTask {
                    for i in 0..<perWriter {
                        let gid = "w\(w)-\(i)"
                        #expect(try await store.saveNew(sampleTransaction(gid), branches: sampleBranches(gid)) == nil)
                        try await store.updateBranches(
                            gid: gid, requiring: .submitted, updates: [BranchStatusUpdate(branchID: "01", op: "action", status: .succeed, finishTime: t0)],
                            now: t0)
                    }
                }
            }
            try await group.waitForAll()
        }
        let writes = writers * perWriter * 2
        // Whether writes share commits depends on how many overlap a commit (a lone write commits on its caller's
        // thread); GroupCommitWriterTests holds the connection to show queued writes sharing one.
        #expect(store.commitCount <= writes, "\(store.commitCount) commits for \(writes) writes")
        store.close()
        // Everything is there after reopening the file.
        let reopened = try SQLiteStore(path: path, logger: Logger(label: "test"))
        let all = try await reopened.scan(position: nil, limit: 10_000, filter: TransactionFilter())
        #expect(all.transactions.count == writers * perWriter)
        for w in [0, 31, 63] {
            let b = try await reopened.branches(gid: "w\(w)-\(perWriter - 1)")
            #expect(b.map(\.status) == [.prepared, .succeed, .prepared, .prepared])
        }
    }

    @Test("one failing job in a batch does not undo its neighbours")
    func failingJobIsolated() async throws {
        let store = try SQLiteStore(path: TempDB.path(), logger: Logger(label: "test"))
        _ = try await store.saveNew(sampleTransaction("iso"), branches: [])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<50 {
                group.addTask {
                    if i % 2 == 0 {
                        _ = try await store.saveNew(sampleTransaction("ok\(i)"), branches: sampleBranches("ok\(i)"))
                    } else {
                        await #expect(throws: DTMError.storageNotFound("")) {
                            try await store.changeStatus(gid: "iso", from: .prepared, to: .failed, change: StatusChange(), now: t0)
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        for i in stride(from: 0, to: 50, by: 2) { #expect(try await store.branches(gid: "ok\(i)").count == 4) }
        #expect(try await store.transaction(gid: "iso")?.status == .submitted)
    }

    @Test("a multi-update job that fails half-way leaves nothing behind; single-update jobs skip the savepoint safely")
    func partialJobUndone() async throws {
        let store = try SQLiteStore(path: TempDB.path(), logger: Logger(label: "test"))
        _ = try await store.saveNew(sampleTransaction("half"), branches: sampleBranches("half"))
        let good = BranchStatusUpdate(branchID: "01", op: "action", status: .succeed, finishTime: t0)
        let missing = BranchStatusUpdate(branchID: "09", op: "action", status: .succeed, finishTime: t0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                await #expect(throws: DTMError.self) {
                    try await store.updateBranches(gid: "half", requiring: .submitted, updates: [good, missing], now: t0)
                }
            }
            group.addTask {
                // Same batch (likely): a single update that succeeds, without a savepoint.
                try await store.updateBranches(
                    gid: "half", requiring: .submitted,
                    updates: [BranchStatusUpdate(branchID: "02", op: "action", status: .succeed, finishTime: t0)], now: t0)
            }
            try await group.waitForAll()
        }
        let statuses = Dictionary(uniqueKeysWithValues: try await store.branches(gid: "half").map { ("\($0.branchID)/\($0.op)", $0.status) })
        #expect(statuses["01/action"] == .prepared, "the failed job's first update must be undone")
        #expect(statuses["02/action"] == .succeed)
    }

    @Test("schema version is recorded; reopening keeps data; reset drops it")
    func migrations() async throws {
        let path = try TempDB.path()
        var store: SQLiteStore? = try SQLiteStore(path: path, logger: Logger(label: "test"))
        _ = try await store!.saveNew(sampleTransaction("keep"), branches: [])
        store!.close()
        store = nil
        store = try SQLiteStore(path: path, logger: Logger(label: "test"))
        #expect(try await store!.transaction(gid: "keep") != nil)
        store!.close()
        store = try SQLiteStore(path: path, reset: true, logger: Logger(label: "test"))
        #expect(try await store!.transaction(gid: "keep") == nil)
        store!.close()
        let version = try SQLiteConnection(path: path, readOnly: true).scalar("PRAGMA user_version")
        #expect(version == SQLiteSchema.currentVersion)
        let journal = try SQLiteConnection(path: path, readOnly: true).scalar("SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'")
        #expect(journal == 1)
    }

    @Test("a database from a newer server is refused with a clear error")
    func newerSchemaRefused() throws {
        let path = try TempDB.path()
        do {
            let c = try SQLiteConnection(path: path, readOnly: false)
            try c.execute("PRAGMA user_version = 99")
        }
        #expect(throws: SQLiteError.self) { try SQLiteStore(path: path, logger: Logger(label: "test")) }
        // A negative version (a stored number) is refused too, not used as an index.
        do {
            let c = try SQLiteConnection(path: path, readOnly: false)
            try c.execute("PRAGMA user_version = -1")
        }
        #expect(throws: SQLiteError.self) { try SQLiteStore(path: path, logger: Logger(label: "test")) }
    }

    @Test("writes after close are refused, not lost silently")
    func closed() async throws {
        let store = try SQLiteStore(path: TempDB.path(), logger: Logger(label: "test"))
        store.close()
        do {
            _ = try await store.saveNew(sampleTransaction("late"), branches: [])
            Issue.record("a write after close was accepted")
        } catch let error as GroupCommitError {
            guard case .closed = error else { Issue.record("\(error)"); return }
        }
    }

    /// Text and blobs are bound without a copy (pointers into the values while the statement runs): every kind of
    /// value must still arrive exactly, an empty text as '' (not NULL), and a later run must not see old values.
    @Test("bound values arrive exactly: empty text is not NULL, non-ASCII and inner NUL survive, blobs too")
    func bindings() throws {
        let db = try SQLiteConnection(path: TempDB.path(), readOnly: false)
        try db.execute("CREATE TABLE t (a, b, c, d, e)")
        let insert = try db.statement("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)")
        let long = String(repeating: "é😀", count: 5000) + "\u{0}end"  // bound in place; the short ones are copied
        try insert.run([.text(""), .text("a\u{0}b"), .blob([]), .blob([0, 1, 255]), .int(7)])
        try insert.run([.text(long), .null, .text("x"), .int(-1), .text("café")])
        let rows = try db.statement("SELECT typeof(a), a, b, typeof(c), hex(d), e FROM t ORDER BY rowid").query([]) { s in
            [s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.text(5)]
        }
        #expect(rows[0] == ["text", "", "a\u{0}b", "blob", "0001FF", "7"])
        #expect(rows[1] == ["text", long, "", "text", "2D31", "café"])
        let found = try db.statement("SELECT count(*) FROM t WHERE a = ?1 AND e = ?2").query([.text(long), .text("café")]) { $0.int(0) }
        #expect(found == [1])
        // More values than parameters: sqlite's range error, short text or long, and nothing written past the end.
        for extra in [SQLiteStatement.Value.text("short"), .text(long), .int(1)] {
            let error = #expect(throws: SQLiteError.self) { try insert.run([.int(1), .int(2), .int(3), .int(4), .int(5), extra]) }
            #expect(error?.code == 25, "SQLITE_RANGE, got \(String(describing: error))")
        }
        #expect(try db.statement("SELECT count(*) FROM t").query([]) { $0.int(0) } == [2])
    }
}
