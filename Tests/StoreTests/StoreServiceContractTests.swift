import Logging
import DTMCore
import DTMTestSupport
import Foundation
import MySQLStore
import PostgresStore
@testable import SQLiteStore
import Testing

/// The parts of the store contract the services use (retention, backlog, attention), on every store.

@Suite("store retention")
struct StoreRetentionTests {
    @Test("deleteFinished removes finished transactions older than the cutoff, with their branches, oldest first", arguments: StoreKind.allCases)
    func deleteFinished(kind: StoreKind) async throws {
        try await kind.withStore { store in
            for (i, status) in [GlobalStatus.succeed, .failed, .succeed, .submitted, .succeed].enumerated() {
                var t = sampleTransaction("r\(i)", status: status)
                t.updateTime = t0.adding(seconds: Double(i * 10))
                _ = try await store.saveNew(t, branches: sampleBranches("r\(i)"))
            }
            let cutoff = t0.adding(seconds: 35)
            #expect(try await store.deleteFinished(before: cutoff, limit: 2) == 2)
            #expect(try await store.transaction(gid: "r0") == nil)
            #expect(try await store.transaction(gid: "r1") == nil)
            #expect(try await store.branches(gid: "r0").isEmpty)
            #expect(try await store.deleteFinished(before: cutoff, limit: 2) == 1, "r2 is left; r3 is unfinished, r4 too young")
            #expect(try await store.deleteFinished(before: cutoff, limit: 2) == 0)
            #expect(try await store.transaction(gid: "r3") != nil)
            #expect(try await store.transaction(gid: "r4") != nil)
            #expect(try await store.branches(gid: "r4").count == 4)
        }
    }
}

@Suite("store backlog")
struct StoreBacklogTests {
    @Test("backlog counts unfinished transactions by status, the due and the overdue, each at most the cap", arguments: StoreKind.allCases)
    func backlog(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let rows: [(GlobalStatus, Double)] = [
                (.prepared, 100), (.prepared, -5), (.submitted, -100), (.submitted, -200), (.submitted, 50), (.aborting, -1), (.succeed, -500),
                (.failed, -500),
            ]
            for (i, (status, due)) in rows.enumerated() {
                var t = sampleTransaction("b\(i)", status: status)
                t.nextCronTime = t0.adding(seconds: due)
                _ = try await store.saveNew(t, branches: [])
            }
            let b = try await store.backlog(now: t0, overdueBefore: t0.adding(seconds: -10), cap: 1000)
            #expect(b.prepared == 2 && b.submitted == 3 && b.aborting == 1)
            #expect(b.due == 4, "unfinished with next_cron_time at or before now: \(b)")
            #expect(b.overdue == 2, "due more than 10 s ago: \(b)")
            let capped = try await store.backlog(now: t0, overdueBefore: t0.adding(seconds: -10), cap: 2)
            #expect(capped.submitted == 2 && capped.due == 2 && capped.prepared == 2)
        }
    }
}

@Suite("store attention")
struct StoreAttentionTests {
    @Test("recordError keeps the last error of a transaction; unfinishedOldest lists unfinished ones oldest first with it", arguments: StoreKind.allCases)
    func attention(kind: StoreKind) async throws {
        try await kind.withStore { store in
            for (i, status) in [GlobalStatus.submitted, .succeed, .prepared, .aborting].enumerated() {
                var t = sampleTransaction("a\(i)", status: status)
                t.createTime = t0.adding(seconds: Double(10 - i))
                _ = try await store.saveNew(t, branches: [])
            }
            try await store.recordError(gid: "a0", message: "first")
            try await store.recordError(gid: "a0", message: "branch 01/action http://127.0.0.1:1/x: 500")
            try await store.recordError(gid: "missing", message: "ignored")
            let rows = try await store.unfinishedOldest(limit: 10)
            #expect(rows.map(\.transaction.gid) == ["a3", "a2", "a0"])
            #expect(rows.map(\.lastError) == ["", "", "branch 01/action http://127.0.0.1:1/x: 500"])
            #expect(try await store.unfinishedOldest(limit: 1).map(\.transaction.gid) == ["a3"])
        }
    }
}
