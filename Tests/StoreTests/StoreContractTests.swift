import Logging
import DTMCore
import DTMTestSupport
import Foundation
import MySQLStore
import PostgresStore
@testable import SQLiteStore
import Testing

/// The store contract (spec §11.1), checked against every store (`StoreKind`).

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
