import Logging
import DTMCore
import DTMTestSupport
import Foundation
import MySQLStore
import PostgresStore
@testable import SQLiteStore
import Testing

/// The store contract (spec §11.1), checked against every store.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible {
    case memory, sqlite, postgres, mysql
    var testDescription: String { rawValue }

    func make() async throws -> any TransactionStore {
        switch self {
        case .memory: return InMemoryStore()
        case .sqlite: return try SQLiteStore(path: TempDB.path(), logger: Logger(label: "test"))
        case .postgres: return try await PostgresStore.open(try TempDB.postgres(), logger: Logger(label: "test"))
        case .mysql: return try await MySQLStore.open(try TempDB.mysql(), logger: Logger(label: "test"))
        }
    }

    /// A fresh store of this kind for `body`, closed afterwards whatever happens.
    func withStore<R>(_ body: (any TransactionStore) async throws -> R) async throws -> R {
        let store = try await make()
        do {
            let result = try await body(store)
            await Self.close(store)
            return result
        } catch {
            await Self.close(store)
            throw error
        }
    }

    static func close(_ store: any TransactionStore) async {
        if let s = store as? SQLiteStore { s.close() }
        if let s = store as? PostgresStore { await s.close() }
        if let s = store as? MySQLStore { await s.close() }
    }

    /// A time as the store gives it back: DTM's PostgreSQL and MySQL columns hold whole seconds.
    func stored(_ t: Timestamp) -> Timestamp {
        guard self == .postgres || self == .mysql else { return t }
        let (q, r) = t.microseconds.quotientAndRemainder(dividingBy: 1_000_000)
        return Timestamp(microseconds: (q + (r >= 500_000 ? 1 : r <= -500_000 ? -1 : 0)) * 1_000_000)
    }

    /// A due time (`next_cron_time`) as the store gives it back: PostgreSQL and MySQL round it up to the whole second,
    /// so that a delay or lease never ends early.
    func storedDue(_ t: Timestamp) -> Timestamp {
        guard self == .postgres || self == .mysql else { return t }
        let (q, r) = t.microseconds.quotientAndRemainder(dividingBy: 1_000_000)
        return Timestamp(microseconds: (q + (r > 0 ? 1 : 0)) * 1_000_000)
    }

    func stored(_ t: GlobalTransaction) -> GlobalTransaction {
        var t = t
        t.createTime = stored(t.createTime)
        t.updateTime = stored(t.updateTime)
        t.finishTime = t.finishTime.map { stored($0) }
        t.rollbackTime = t.rollbackTime.map { stored($0) }
        t.nextCronTime = t.nextCronTime.map { storedDue($0) }
        return t
    }

    func stored(_ b: Branch) -> Branch {
        var b = b
        b.createTime = stored(b.createTime)
        b.updateTime = stored(b.updateTime)
        b.finishTime = b.finishTime.map { stored($0) }
        b.rollbackTime = b.rollbackTime.map { stored($0) }
        return b
    }
}

enum TempDB {
    /// A fresh SQLite file's path, in a directory removed when the test process exits.
    static func path() throws -> String {
        try TemporaryDirectory.processScoped(prefix: "swift-dtm-tests").file("dtm.sqlite")
    }

    /// A fresh schema on the test process's PostgreSQL cluster.
    static func postgres() throws -> PostgresStoreConfiguration {
        let server = try PostgresTestServer.shared.get()
        var c = PostgresStoreConfiguration()
        c.port = server.port
        c.user = server.user
        c.database = "postgres"
        c.schema = "s_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        c.writerConnections = 2
        c.readerConnections = 1
        return c
    }

    /// A fresh database on the test process's MariaDB server.
    static func mysql() throws -> MySQLStoreConfiguration {
        let server = try MySQLTestServer.shared.get()
        var c = MySQLStoreConfiguration()
        c.port = server.port
        c.user = server.user
        c.password = server.password
        c.database = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        c.writerConnections = 2
        c.readerConnections = 1
        return c
    }
}

let t0 = Timestamp(microseconds: 1_800_000_000_123_456)

func sampleTransaction(_ gid: String, status: GlobalStatus = .submitted) -> GlobalTransaction {
    var t = GlobalTransaction(gid: gid, transType: .saga, status: status, createTime: t0)
    t.queryPrepared = "http://127.0.0.1:1/qp"
    t.transProtocol = "grpc"
    t.updateTime = t0.adding(seconds: 1)
    t.finishTime = t0.adding(seconds: 2)
    t.rollbackTime = t0.adding(seconds: 3)
    t.options.waitResult = true
    t.options.timeoutToFail = 60
    t.options.requestTimeout = 7
    t.options.retryInterval = 11
    t.options.branchHeaders = ["h1": "v1", "h2": "v \"2\"", "h\\3": "line\nbreak\t\u{1}é😀"]
    t.options.concurrent = true
    t.options.retryLimit = 4
    t.options.retryCount = 2
    t.customData = #"{"orders":{"1":[0]},"concurrent":true}"#
    t.nextCronInterval = 20
    t.nextCronTime = t0.adding(seconds: 20)
    t.owner = "o1"
    t.extData = #"{"headers":{}}"#
    t.result = "cmVzdWx0"
    t.rollbackReason = "because ' \" ; -- DROP TABLE trans_global"
    return t
}

func sampleBranches(_ gid: String, count: Int = 2) -> [Branch] {
    (0..<count).flatMap { i in
        ["compensate", "action"].map { op in
            var b = Branch(
                gid: gid, url: "http://127.0.0.1:1/\(op)\(i)", binData: [0, 1, 2, 255, UInt8(i)], branchID: String(format: "%02d", i + 1), op: op,
                createTime: t0)
            b.updateTime = t0.adding(seconds: 1)
            return b
        }
    }
}

@Suite("store contract")
struct StoreContractTests {
    @Test("every field of a transaction and its branches round-trips", arguments: StoreKind.allCases)
    func roundTrip(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let t = sampleTransaction("rt")
            #expect(try await store.saveNew(t, branches: sampleBranches("rt")) == nil)
            var loaded = try #require(try await store.transaction(gid: "rt"))
            #expect(loaded.id > 0)
            loaded.id = 0
            #expect(loaded == kind.stored(t))
            let branches = try await store.branches(gid: "rt")
            #expect(branches.map(\.id) == branches.map(\.id).sorted(), "insertion order")
            #expect(
                branches.map {
                    var b = $0; b.id = 0; return b
                } == sampleBranches("rt").map { kind.stored($0) })
        }
    }

    @Test("saveNew of an existing gid changes nothing and returns the stored one", arguments: StoreKind.allCases)
    func saveNewConflict(kind: StoreKind) async throws {
        try await kind.withStore { store in
            _ = try await store.saveNew(sampleTransaction("dup"), branches: sampleBranches("dup"))
            var other = sampleTransaction("dup", status: .prepared)
            other.customData = "x"
            let existing = try #require(try await store.saveNew(other, branches: sampleBranches("dup", count: 5)))
            #expect(existing.status == .submitted)
            #expect(try await store.branches(gid: "dup").count == 4)
        }
    }

    @Test("a stale compare-and-set is refused and changes nothing", arguments: StoreKind.allCases)
    func staleCAS(kind: StoreKind) async throws {
        try await kind.withStore { store in
            _ = try await store.saveNew(sampleTransaction("cas"), branches: sampleBranches("cas"))
            try await store.changeStatus(gid: "cas", from: .submitted, to: .aborting, change: StatusChange(rollbackReason: "r1"), now: t0)
            await #expect(throws: DTMError.storageNotFound("")) {
                try await store.changeStatus(gid: "cas", from: .submitted, to: .succeed, change: StatusChange(finishTime: t0), now: t0)
            }
            await #expect(throws: DTMError.storageNotFound("")) {
                try await store.updateBranches(
                    gid: "cas", requiring: .submitted, updates: [BranchStatusUpdate(branchID: "01", op: "action", status: .succeed, finishTime: t0)], now: t0)
            }
            let t = try #require(try await store.transaction(gid: "cas"))
            #expect(t.status == .aborting)
            #expect(t.rollbackReason == "r1")
            #expect(try await store.branches(gid: "cas").allSatisfy { $0.status == .prepared })
            await #expect(throws: DTMError.storageNotFound("")) {
                try await store.changeStatus(gid: "missing", from: .submitted, to: .succeed, change: StatusChange(), now: t0)
            }
        }
    }

    @Test("branch updates guarded by the global status", arguments: StoreKind.allCases)
    func branchUpdate(kind: StoreKind) async throws {
        try await kind.withStore { store in
            _ = try await store.saveNew(sampleTransaction("bu"), branches: sampleBranches("bu"))
            let at = t0.adding(seconds: 5)
            try await store.updateBranches(
                gid: "bu", requiring: .submitted, updates: [BranchStatusUpdate(branchID: "02", op: "action", status: .failed, finishTime: at)], now: at)
            let b = try await store.branches(gid: "bu")
            #expect(b.map(\.status) == [.prepared, .prepared, .prepared, .failed])
            #expect(b[3].finishTime == kind.stored(at))
            #expect(b[3].updateTime == kind.stored(at))
            // A single update of a branch that does not exist names it; of a transaction in another status, does not.
            do {
                try await store.updateBranches(
                    gid: "bu", requiring: .submitted, updates: [BranchStatusUpdate(branchID: "09", op: "action", status: .succeed, finishTime: at)], now: at)
                Issue.record("an update of a missing branch succeeded")
            } catch let DTMError.storageNotFound(message) {
                #expect(message.contains("09/action"), "\(message)")
            }
            do {
                try await store.updateBranches(
                    gid: "bu", requiring: .aborting, updates: [BranchStatusUpdate(branchID: "01", op: "action", status: .succeed, finishTime: at)], now: at)
                Issue.record("an update under the wrong global status succeeded")
            } catch let DTMError.storageNotFound(message) {
                #expect(message.isEmpty, "\(message)")
            }
            #expect(try await store.branches(gid: "bu").map(\.status) == [.prepared, .prepared, .prepared, .failed])
        }
    }

    @Test("insertBranches needs the status and is all-or-nothing on a duplicate", arguments: StoreKind.allCases)
    func insertBranches(kind: StoreKind) async throws {
        try await kind.withStore { store in
            _ = try await store.saveNew(sampleTransaction("ib", status: .prepared), branches: [])
            let first = Branch(gid: "ib", url: "u", binData: [], branchID: "01", op: "cancel", createTime: t0)
            let second = Branch(gid: "ib", url: "u", binData: [], branchID: "01", op: "confirm", createTime: t0)
            try await store.insertBranches(gid: "ib", requiring: .prepared, branches: [first])
            let fresh = Branch(gid: "ib", url: "u", binData: [], branchID: "02", op: "cancel", createTime: t0)
            do {
                try await store.insertBranches(gid: "ib", requiring: .prepared, branches: [fresh, first])
                Issue.record("a duplicate branch was inserted")
            } catch let DTMError.uniqueConflict(message) {
                #expect(message.contains("01/cancel"), "names the conflicting branch: \(message)")
            }
            #expect(try await store.branches(gid: "ib").map(\.branchID) == ["01"], "the fresh row of the failed call is not kept")
            try await store.insertBranches(gid: "ib", requiring: .prepared, branches: [second])
            await #expect(throws: DTMError.storageNotFound("")) { try await store.insertBranches(gid: "ib", requiring: .submitted, branches: [fresh]) }
            #expect(try await store.branches(gid: "ib").map(\.op) == ["cancel", "confirm"])
        }
    }

    @Test("claimDue takes due unfinished transactions and leases them", arguments: StoreKind.allCases)
    func claim(kind: StoreKind) async throws {
        try await kind.withStore { store in
            for (gid, status, due) in [("d1", GlobalStatus.submitted, 1.0), ("d2", .aborting, 2.0), ("d3", .prepared, 100.0), ("d4", .succeed, 1.0)] {
                var t = sampleTransaction(gid, status: status)
                t.nextCronTime = t0.adding(seconds: due)
                _ = try await store.saveNew(t, branches: [])
            }
            let now = t0.adding(seconds: 10)
            let claimed = try await store.claimDue(dueBefore: now, leaseUntil: now.adding(seconds: 10), owner: "me", limit: 10, now: now)
            #expect(claimed.map(\.gid) == ["d1", "d2"])
            #expect(claimed.allSatisfy { $0.owner == "me" && $0.nextCronTime == kind.storedDue(now.adding(seconds: 10)) })
            #expect(try await store.claimDue(dueBefore: now, leaseUntil: now, owner: "you", limit: 10, now: now).isEmpty)
            let one = try await store.claimDue(dueBefore: t0.adding(seconds: 1000), leaseUntil: now, owner: "x", limit: 1, now: now)
            #expect(one.count == 1)
        }
    }

    @Test("renewLease: the owner's, an unclaimed or an expired lease is taken; another owner's live lease is not", arguments: StoreKind.allCases)
    func renewLease(kind: StoreKind) async throws {
        try await kind.withStore { store in
            var unclaimed = sampleTransaction("l-free")
            unclaimed.owner = ""
            _ = try await store.saveNew(unclaimed, branches: [])
            _ = try await store.saveNew(sampleTransaction("l-held"), branches: [])  // owner o1, next_cron_time t0 + 20
            _ = try await store.saveNew(sampleTransaction("l-done", status: .succeed), branches: [])
            let now = t0.adding(seconds: 5)
            let until = now.adding(seconds: 30)

            #expect(try await store.renewLease(gid: "l-free", owner: "me", until: until, now: now))
            var t = try #require(try await store.transaction(gid: "l-free"))
            #expect(t.owner == "me")
            #expect(t.nextCronTime == kind.storedDue(until))
            #expect(t.updateTime == kind.stored(now))
            // Now it is mine: another coordinator cannot take it before it expires, I can renew it.
            #expect(try await store.renewLease(gid: "l-free", owner: "you", until: until.adding(seconds: 10), now: now) == false)
            #expect(try await store.renewLease(gid: "l-free", owner: "me", until: until.adding(seconds: 10), now: now.adding(seconds: 1)))
            #expect(try await store.transaction(gid: "l-free")?.nextCronTime == kind.storedDue(until.adding(seconds: 10)))

            // o1's lease runs to t0 + 20: refused before, taken after.
            #expect(try await store.renewLease(gid: "l-held", owner: "me", until: until, now: now) == false)
            t = try #require(try await store.transaction(gid: "l-held"))
            #expect(t.owner == "o1")
            #expect(t.nextCronTime == kind.storedDue(t0.adding(seconds: 20)))
            let after = t0.adding(seconds: 21)
            #expect(try await store.renewLease(gid: "l-held", owner: "me", until: after.adding(seconds: 30), now: after))
            #expect(try await store.transaction(gid: "l-held")?.owner == "me")

            // Finished or missing: nothing to hold.
            #expect(try await store.renewLease(gid: "l-done", owner: "o1", until: until, now: now) == false)
            #expect(try await store.renewLease(gid: "l-missing", owner: "me", until: until, now: now) == false)
            #expect(try await store.renewLease(gid: "l\u{0}nul", owner: "me", until: until, now: now) == false)
        }
    }

    @Test("due times are never stored earlier than asked (a delay, back-off or lease is a lower bound)", arguments: StoreKind.allCases)
    func dueTimesNeverEarly(kind: StoreKind) async throws {
        try await kind.withStore { store in
            var t = sampleTransaction("due")
            t.nextCronTime = t0.adding(seconds: 1.6)  // t0 ends in .123456: 1.723456 s past a whole second
            _ = try await store.saveNew(t, branches: [])
            func stored() async throws -> Timestamp { try #require(try await store.transaction(gid: "due")?.nextCronTime) }
            #expect(try await stored() >= t0.adding(seconds: 1.6))
            try await store.touchCronTime(gid: "due", requiring: .submitted, interval: 2, nextCronTime: t0.adding(seconds: 2.2), now: t0)
            #expect(try await stored() >= t0.adding(seconds: 2.2))
            let now = t0.adding(seconds: 30)
            let claimed = try await store.claimDue(dueBefore: now, leaseUntil: now.adding(seconds: 10.2), owner: "me", limit: 1, now: now)
            #expect(claimed.first?.nextCronTime.map { $0 >= now.adding(seconds: 10.2) } == true)
            #expect(try await stored() >= now.adding(seconds: 10.2))
            #expect(try await store.renewLease(gid: "due", owner: "me", until: now.adding(seconds: 23.4), now: now))
            #expect(try await stored() >= now.adding(seconds: 23.4))
            #expect(try await stored() < now.adding(seconds: 24.5))
        }
    }

    @Test("touchCronTime is a no-op when the status moved; resetNextCronTime and resetCronTime", arguments: StoreKind.allCases)
    func schedule(kind: StoreKind) async throws {
        try await kind.withStore { store in
            _ = try await store.saveNew(sampleTransaction("sc"), branches: [])
            try await store.touchCronTime(gid: "sc", requiring: .aborting, interval: 99, nextCronTime: t0, now: t0)
            #expect(try await store.transaction(gid: "sc")?.nextCronInterval == 20)
            try await store.touchCronTime(gid: "sc", requiring: .submitted, interval: 40, nextCronTime: t0.adding(seconds: 40), now: t0)
            #expect(try await store.transaction(gid: "sc")?.nextCronInterval == 40)
            let later = t0.adding(seconds: 1)
            try await store.resetNextCronTime(gid: "sc", now: later)
            #expect(try await store.transaction(gid: "sc")?.nextCronTime == kind.stored(later))
            await #expect(throws: DTMError.storageNotFound("")) { try await store.resetNextCronTime(gid: "nope", now: later) }
            let (count, remaining) = try await store.resetCronTime(laterThan: t0, limit: 5, now: t0)
            #expect(count == 1)
            #expect(!remaining)
        }
    }

    @Test("scan pages newest first with filters", arguments: StoreKind.allCases)
    func scan(kind: StoreKind) async throws {
        try await kind.withStore { store in
            for i in 0..<5 {
                var t = sampleTransaction("p\(i)", status: i % 2 == 0 ? .succeed : .failed)
                t.createTime = t0.adding(seconds: Double(i))
                _ = try await store.saveNew(t, branches: [])
            }
            let page1 = try await store.scan(position: nil, limit: 2, filter: TransactionFilter())
            #expect(page1.transactions.map(\.gid) == ["p4", "p3"])
            let page2 = try await store.scan(position: page1.nextPosition, limit: 2, filter: TransactionFilter())
            #expect(page2.transactions.map(\.gid) == ["p2", "p1"])
            let page3 = try await store.scan(position: page2.nextPosition, limit: 2, filter: TransactionFilter())
            #expect(page3.transactions.map(\.gid) == ["p0"])
            #expect(page3.nextPosition == nil)
            var f = TransactionFilter()
            f.status = "succeed"
            f.createTimeStart = t0.adding(seconds: 1)
            #expect(try await store.scan(position: nil, limit: 10, filter: f).transactions.map(\.gid) == ["p4", "p2"])
        }
    }

    @Test("KV: create, version compare-and-set, find, scan, delete", arguments: StoreKind.allCases)
    func kv(kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.createKV(KVRecord(cat: "topics", key: "t1", value: "[]", createTime: t0))
            await #expect(throws: DTMError.uniqueConflict("")) { try await store.createKV(KVRecord(cat: "topics", key: "t1", value: "x", createTime: t0)) }
            var r = try #require(try await store.findKV(cat: "topics", key: "t1").first)
            #expect(r.version == 1)
            r.value = "[1]"
            try await store.updateKV(r, now: t0)
            await #expect(throws: DTMError.storageNotFound("")) { try await store.updateKV(r, now: t0) }
            #expect(try await store.findKV(cat: "topics", key: "t1").first?.version == 2)
            try await store.createKV(KVRecord(cat: "topics", key: "t2", value: "[]", createTime: t0))
            let page = try await store.scanKV(cat: "topics", position: nil, limit: 1)
            #expect(page.records.map(\.key) == ["t2"])
            #expect(try await store.scanKV(cat: "topics", position: page.nextPosition, limit: 1).records.map(\.key) == ["t1"])
            #expect(try await store.findKV(cat: "", key: "").count == 2)
            try await store.deleteKV(cat: "topics", key: "t1")
            await #expect(throws: DTMError.storageNotFound("")) { try await store.deleteKV(cat: "topics", key: "t1") }
        }
    }
}

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
