import DTMCore
import DTMTestSupport
import Foundation
import Logging
@testable import MySQLStore
@testable import PostgresStore
import Testing

/// What the PostgreSQL and MySQL stores have beyond the contract: several coordinators on one database, writes that
/// share statements and commits, DTM's column widths, rows other programs wrote, migrations. Each test runs on both
/// (`SQLStoreKind`), against the test process's private PostgreSQL cluster and MariaDB server.
@Suite("SQL stores")
struct SQLStoreTests {
    @Test("two coordinators claiming at once take disjoint sets of due transactions, and together all of them", arguments: SQLStoreKind.allCases)
    func disjointClaims(kind: SQLStoreKind) async throws {
        let database = try kind.freshDatabase()
        let a = try await database.open()
        let b = try await database.open()
        for i in 0..<200 {
            var t = sampleTransaction("due\(i)")
            t.nextCronTime = t0
            _ = try await a.saveNew(t, branches: [])
        }
        let now = t0.adding(seconds: 10)
        func drain(_ store: any SQLTestStore, _ owner: String) async throws -> [String] {
            var gids: [String] = []
            while true {
                let claimed = try await store.claimDue(dueBefore: now, leaseUntil: now.adding(seconds: 10), owner: owner, limit: 7, now: now)
                if claimed.isEmpty { return gids }
                gids += claimed.map(\.gid)
            }
        }
        async let fromA = drain(a, "a")
        async let fromB = drain(b, "b")
        let (ga, gb) = try await (fromA, fromB)
        #expect(Set(ga).isDisjoint(with: gb))
        #expect(Set(ga + gb).count == 200)
        #expect(ga.count + gb.count == 200)
        let owners = try database.sql("SELECT owner, count(*) FROM trans_global GROUP BY owner ORDER BY owner")
        #expect(owners.contains("a\t\(ga.count)") && owners.contains("b\t\(gb.count)"), "\(owners)")
        await a.close()
        await b.close()
    }

    @Test("compare-and-set from two coordinators at once: exactly one wins each transaction", arguments: SQLStoreKind.allCases)
    func concurrentCAS(kind: SQLStoreKind) async throws {
        let database = try kind.freshDatabase()
        let a = try await database.open()
        let b = try await database.open()
        for i in 0..<40 { _ = try await a.saveNew(sampleTransaction("cas\(i)"), branches: sampleBranches("cas\(i)")) }
        let outcomes = await withTaskGroup(of: (String, Bool).self) { group in
            for i in 0..<40 {
                for (store, to) in [(a, GlobalStatus.succeed), (b, .aborting)] {
                    group.addTask {
                        do {
                            try await store.changeStatus(
                                gid: "cas\(i)", from: .submitted, to: to, change: StatusChange(),
                                branchUpdates: [BranchStatusUpdate(branchID: "01", op: "action", status: .succeed, finishTime: t0)], now: t0)
                            return ("cas\(i)", true)
                        } catch {
                            return ("cas\(i)", false)
                        }
                    }
                }
            }
            var wins: [String: Int] = [:]
            for await (gid, won) in group where won { wins[gid, default: 0] += 1 }
            return wins
        }
        #expect(outcomes.count == 40)
        #expect(outcomes.values.allSatisfy { $0 == 1 })
        await a.close()
        await b.close()
    }

    @Test("a statement the server refuses fails alone: the other writes of its batch commit, and share commits", arguments: SQLStoreKind.allCases)
    func poisonInBatch(kind: SQLStoreKind) async throws {
        let database = try kind.freshDatabase()
        let store = try await database.open()
        // The server refuses the poison: PostgreSQL its global row (a trigger raises), MySQL its branch rows (url NULL
        // in a NOT NULL column, in strict mode; the global row inserted before them is rolled back with them).
        let (trigger, refusal, mostCommits) =
            switch kind {
            case .postgres:
                (
                    """
                    CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN
                      IF NEW.gid = 'poison' THEN RAISE EXCEPTION 'poison refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql;
                    CREATE TRIGGER refuse_poison BEFORE INSERT ON trans_global FOR EACH ROW EXECUTE FUNCTION refuse_poison();
                    """, "poison refused", 32
                )
            case .mysql:
                (
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON trans_branch_op FOR EACH ROW SET NEW.url = IF(NEW.gid = 'poison', NULL, NEW.url)",
                    "1048", 40
                )
            }
        try database.sql(trigger)
        let results = await withTaskGroup(of: (String, String?).self) { group in
            for i in 0..<64 {
                let gid = i == 17 ? "poison" : "g\(i)"
                group.addTask {
                    do {
                        _ = try await store.saveNew(sampleTransaction(gid), branches: sampleBranches(gid))
                        return (gid, nil)
                    } catch {
                        return (gid, "\(error)")
                    }
                }
            }
            var out: [String: String?] = [:]
            for await (gid, error) in group { out[gid] = error }
            return out
        }
        #expect(results.filter { $0.value != nil }.map(\.key) == ["poison"])
        #expect(results["poison"]??.contains(refusal) == true, "\(String(describing: results["poison"]))")
        #expect(try database.sql("SELECT count(*) FROM trans_global") == "63")
        #expect(try database.sql("SELECT count(*) FROM trans_branch_op") == "252")
        #expect(
            store.commitCount < mostCommits,
            "writes shared commits, and the refused one did not make its batch commit one by one: \(store.commitCount)")
        await store.close()
    }

    @Test("writes that share one statement each get their own answer: saves, branch updates and status changes", arguments: SQLStoreKind.allCases)
    func sharedStatements(kind: SQLStoreKind) async throws {
        let store = try await kind.freshDatabase().open()
        for i in 0..<60 { _ = try await store.saveNew(sampleTransaction("m\(i)"), branches: sampleBranches("m\(i)")) }
        let commitsBefore = store.commitCount
        // Every third transaction is asked for the wrong status; every fifth branch update names a missing branch.
        let answers = await withTaskGroup(of: (Int, String, String).self) { group in
            for i in 0..<60 {
                group.addTask {
                    let from: GlobalStatus = i % 3 == 0 ? .aborting : .submitted
                    var update = "ok"
                    do {
                        try await store.updateBranches(
                            gid: "m\(i)", requiring: from,
                            updates: [BranchStatusUpdate(branchID: i % 5 == 0 ? "99" : "01", op: "action", status: .succeed, finishTime: t0)], now: t0)
                    } catch { update = "\(error)" }
                    var change = "ok"
                    do {
                        try await store.changeStatus(gid: "m\(i)", from: from, to: .succeed, change: StatusChange(finishTime: t0), now: t0)
                    } catch { change = "\(error)" }
                    return (i, update, change)
                }
                group.addTask {
                    let gid = i % 4 == 0 ? "m\(i)" : "new\(i)"
                    do {
                        let existing = try await store.saveNew(sampleTransaction(gid, status: .prepared), branches: sampleBranches(gid))
                        return (1000 + i, existing == nil ? "new" : "existing", "")
                    } catch {
                        return (1000 + i, "\(error)", "")
                    }
                }
            }
            var out: [Int: (String, String)] = [:]
            for await (i, a, b) in group { out[i] = (a, b) }
            return out
        }
        for i in 0..<60 {
            let (update, change) = try #require(answers[i])
            if i % 3 == 0 {
                #expect(update == "storage: NotFound" && change == "storage: NotFound", "\(i): \(update) / \(change)")
            } else if i % 5 == 0 {
                #expect(update == "storage: NotFound: branch 99/action of m\(i)", "\(i): \(update)")
                #expect(change == "ok")
            } else {
                #expect(update == "ok" && change == "ok", "\(i): \(update) / \(change)")
            }
            #expect(answers[1000 + i]?.0 == (i % 4 == 0 ? "existing" : "new"), "\(i): \(String(describing: answers[1000 + i]))")
            let t = try #require(try await store.transaction(gid: "m\(i)"))
            #expect(t.status == (i % 3 == 0 ? .submitted : .succeed))
            let branches = try await store.branches(gid: "m\(i)")
            #expect(branches.filter { $0.status == .succeed }.count == (i % 3 != 0 && i % 5 != 0 ? 1 : 0))
            if i % 4 != 0 { #expect(try await store.branches(gid: "new\(i)").map(\.branchID) == ["01", "01", "02", "02"]) }
        }
        #expect(store.commitCount - commitsBefore < 150, "writes shared commits: \(store.commitCount - commitsBefore) for 165")
        await store.close()
    }

    @Test(
        "saves that share statements each get their own answer; a duplicate gid among them is found; branch updates too",
        arguments: SQLStoreKind.allCases)
    func sharedSaves(kind: SQLStoreKind) async throws {
        let database = try kind.freshDatabase()
        let store = try await database.open()
        for i in 0..<20 { _ = try await store.saveNew(sampleTransaction("m\(i)"), branches: sampleBranches("m\(i)")) }
        let commitsBefore = store.commitCount
        // Every fourth save names a transaction that exists; every third branch update asks for the wrong status.
        let answers = await withTaskGroup(of: (String, String).self) { group in
            for i in 0..<80 {
                group.addTask {
                    let gid = i % 4 == 0 ? "m\(i / 4)" : "new\(i)"
                    do {
                        let existing = try await store.saveNew(sampleTransaction(gid, status: .prepared), branches: sampleBranches(gid))
                        return ("save\(i)", existing == nil ? "new" : "existing \(existing?.status.rawValue ?? "")")
                    } catch {
                        return ("save\(i)", "\(error)")
                    }
                }
            }
            for i in 0..<20 {
                group.addTask {
                    do {
                        try await store.updateBranches(
                            gid: "m\(i)", requiring: i % 3 == 0 ? .aborting : .submitted,
                            updates: [BranchStatusUpdate(branchID: "01", op: "action", status: .succeed, finishTime: t0)], now: t0)
                        return ("update\(i)", "ok")
                    } catch {
                        return ("update\(i)", "\(error)")
                    }
                }
            }
            var out: [String: String] = [:]
            for await (key, answer) in group { out[key] = answer }
            return out
        }
        for i in 0..<80 {
            #expect(answers["save\(i)"] == (i % 4 == 0 ? "existing submitted" : "new"), "\(i): \(String(describing: answers["save\(i)"]))")
            if i % 4 != 0 { #expect(try await store.branches(gid: "new\(i)").map(\.branchID) == ["01", "01", "02", "02"]) }
        }
        for i in 0..<20 {
            #expect(answers["update\(i)"] == (i % 3 == 0 ? "storage: NotFound" : "ok"), "\(i): \(String(describing: answers["update\(i)"]))")
            #expect(try await store.branches(gid: "m\(i)").filter { $0.status == .succeed }.count == (i % 3 == 0 ? 0 : 1))
        }
        #expect(try database.sql("SELECT count(*) FROM trans_global") == "80")
        #expect(store.commitCount - commitsBefore < 60, "writes shared commits: \(store.commitCount - commitsBefore) for 100")
        await store.close()
    }

    @Test(
        "a row another program wrote that the model cannot read is set aside for an hour, not claimed again and again",
        arguments: SQLStoreKind.allCases)
    func unreadableRowParked(kind: SQLStoreKind) async throws {
        let database = try kind.freshDatabase()
        let store = try await database.open()
        var good = sampleTransaction("good")
        good.nextCronTime = t0
        _ = try await store.saveNew(good, branches: [])
        // DTM's columns: timestamp with time zone on PostgreSQL, datetime (local time) on MySQL.
        let (due, epoch) =
            switch kind {
            case .postgres: ("'2027-01-15 08:00:00+08'", "extract(epoch FROM next_cron_time)::bigint")
            case .mysql: ("'2027-01-15 08:00:00'", "UNIX_TIMESTAMP(next_cron_time)")
            }
        try database.sql(
            """
            INSERT INTO trans_global (gid, trans_type, status, query_prepared, protocol, next_cron_time, next_cron_interval)
            VALUES ('bogus', 'no-such-mode', 'submitted', '', 'http', \(due), 10)
            """)
        let now = Timestamp(microseconds: 1_900_000_000_000_000)
        let claimed = try await store.claimDue(dueBefore: now, leaseUntil: now.adding(seconds: 10), owner: "me", limit: 10, now: now)
        #expect(claimed.map(\.gid) == ["good"])
        let parked = try database.sql("SELECT \(epoch) FROM trans_global WHERE gid = 'bogus'")
        #expect(Int64(parked) == 1_900_003_600, "\(parked)")
        #expect(try await store.claimDue(dueBefore: now, leaseUntil: now, owner: "me", limit: 10, now: now).isEmpty)
        #expect(try await store.scan(position: nil, limit: 10, filter: TransactionFilter()).transactions.map(\.gid) == ["good"])
        await store.close()
    }

    @Test("values DTM's columns cannot hold are refused naming the field; a reason the server writes is cut to fit", arguments: SQLStoreKind.allCases)
    func columnWidths(kind: SQLStoreKind) async throws {
        let store = try await kind.freshDatabase().open()
        let long = String(repeating: "g", count: 129)
        await #expect(throws: DTMError.invalidArgument("gid is longer than 128 characters, the width of its column in DTM's \(kind.name) schema")) {
            _ = try await store.saveNew(sampleTransaction(long), branches: [])
        }
        var nul = sampleTransaction("nul")
        nul.customData = "a\u{0}b"
        let nulRefusal =
            switch kind {
            case .postgres: "custom_data contains a NUL character, which PostgreSQL text cannot hold"
            case .mysql: "custom_data contains a NUL character, which the store does not keep"
            }
        await #expect(throws: DTMError.invalidArgument(nulRefusal)) {
            _ = try await store.saveNew(nul, branches: [])
        }
        // 1024 characters of 4 bytes each fit: widths count characters (MySQL's utf8mb4 holds any of them).
        var wide = sampleTransaction("wide")
        wide.rollbackReason = String(repeating: "😀", count: 1024)
        #expect(try await store.saveNew(wide, branches: []) == nil)
        #expect(try await store.transaction(gid: "wide")?.rollbackReason == wide.rollbackReason)
        _ = try await store.saveNew(sampleTransaction("r"), branches: [])
        try await store.changeStatus(
            gid: "r", from: .submitted, to: .aborting, change: StatusChange(rollbackReason: String(repeating: "é\u{0}", count: 3000)), now: t0)
        #expect(try #require(try await store.transaction(gid: "r")).rollbackReason == String(repeating: "é", count: 1024))
        await store.close()
    }

    @Test(
        "times beyond the column type's range are clamped into it, not refused; due times round up, others to the nearest second",
        arguments: SQLStoreKind.allCases)
    func times(kind: SQLStoreKind) async throws {
        let store = try await kind.freshDatabase().open()
        var t = sampleTransaction("far", status: .prepared)
        t.createTime = .distantPast
        t.nextCronTime = .distantFuture
        t.finishTime = Timestamp(microseconds: 0)
        // Half a second rounds up. PostgreSQL rounds a half away from its epoch (2000), so it is asked one after it.
        let (half, rounded): (Int64, Int64) =
            switch kind {
            case .postgres: (1_800_000_000_500_000, 1_800_000_001_000_000)
            case .mysql: (1_500_000, 2_000_000)
            }
        t.updateTime = Timestamp(microseconds: half)
        #expect(try await store.saveNew(t, branches: []) == nil)
        let loaded = try #require(try await store.transaction(gid: "far"))
        // PostgreSQL's timestamp runs from 4713 BC to 294276 AD, MySQL's datetime from 1000 to 9999.
        let (earliest, latest): (Int64, Int64) =
            switch kind {
            case .postgres: (-200_000_000_000_000_000, 9_000_000_000_000_000_000)
            case .mysql: (-30_000_000_000_000_000, 253_000_000_000_000_000)
            }
        #expect(loaded.createTime.microseconds < earliest)
        #expect(try #require(loaded.nextCronTime).microseconds > latest)
        #expect(loaded.finishTime == Timestamp(microseconds: 0))
        #expect(loaded.updateTime == Timestamp(microseconds: rounded))
        try await store.touchCronTime(gid: "far", requiring: .prepared, interval: .max, nextCronTime: .distantFuture, now: .distantFuture)
        #expect(try await store.transaction(gid: "far")?.nextCronInterval == Int64(Int32.max))
        try await store.touchCronTime(gid: "far", requiring: .prepared, interval: .max, nextCronTime: Timestamp(microseconds: 1_000_001), now: t0)
        let touched = try #require(try await store.transaction(gid: "far"))
        #expect(touched.nextCronInterval == Int64(Int32.max))
        #expect(touched.nextCronTime == Timestamp(microseconds: 2_000_000))
        await store.close()
    }

    @Test(
        "schema: DTM's tables and keys, our migrations once under a lock however many open together; -r drops it; a newer one is refused",
        arguments: SQLStoreKind.allCases)
    func migrations(kind: SQLStoreKind) async throws {
        let database = try kind.freshDatabase()
        let stores = try await withThrowingTaskGroup(of: (any SQLTestStore).self) { group in
            for _ in 0..<3 { group.addTask { try await database.open() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        _ = try await stores[0].saveNew(sampleTransaction("kept"), branches: [])
        for s in stores { await s.close() }
        let (version, indexQuery, indexes) =
            switch kind {
            case .postgres:
                (
                    PostgresSchema.currentVersion,
                    "SELECT indexname FROM pg_indexes WHERE schemaname = '\(database.name)' ORDER BY 1",
                    ["gid", "gid_branch_uniq", "owner", "status_next_cron_time", "trans_global_due", "trans_global_finished", "uniq_k"]
                )
            case .mysql:
                (
                    MySQLSchema.currentVersion,
                    "SELECT DISTINCT CONCAT(table_name, '.', index_name) FROM information_schema.statistics WHERE table_schema = '\(database.name)' ORDER BY 1",
                    [
                        "kv.uniq_k", "trans_branch_op.gid_uniq", "trans_global.gid", "trans_global.owner", "trans_global.status_next_cron_time",
                        "trans_global.trans_global_due", "trans_global.trans_global_finished",
                    ]
                )
            }
        #expect(try database.sql("SELECT version FROM swift_dtm_schema") == "\(version)")
        #expect(try database.sql("SELECT count(*) FROM swift_dtm_schema") == "1")
        let found = try database.sql(indexQuery)
        for name in indexes {
            #expect(found.split(separator: "\n").contains(Substring(name)), "index \(name): \(found)")
        }
        if kind == .mysql {
            #expect(
                try database.sql(
                    "SELECT ENGINE, TABLE_COLLATION FROM information_schema.tables WHERE table_schema = '\(database.name)' AND table_name = 'trans_global'"
                )
                .hasPrefix("InnoDB\tutf8mb4"))
        }
        var store = try await database.open()
        #expect(try await store.transaction(gid: "kept") != nil)
        await store.close()
        store = try await database.open(reset: true)
        #expect(try await store.transaction(gid: "kept") == nil)
        await store.close()
        try database.sql("UPDATE swift_dtm_schema SET version = -1")
        do {
            _ = try await database.open()
            Issue.record("a negative schema version was accepted")
        } catch {
            #expect(kind.isStoreError(error) && "\(error)".contains("is not valid"), "\(error)")
        }
        try database.sql("UPDATE swift_dtm_schema SET version = 99")
        do {
            _ = try await database.open()
            Issue.record("a newer schema was accepted")
        } catch {
            #expect("\(error)".contains("newer than this server"), "\(error)")
        }
    }

    @Test("configured table names are used, and names that are not identifiers are refused", arguments: SQLStoreKind.allCases)
    func tableNames(kind: SQLStoreKind) async throws {
        var database = try kind.freshDatabase()
        try database.useTables(global: "my_global", branch: "my_branch")
        let store = try await database.open()
        _ = try await store.saveNew(sampleTransaction("t"), branches: sampleBranches("t"))
        #expect(try database.sql("SELECT count(*) FROM my_branch") == "4")
        await store.close()
        // Identifiers are at most 63 bytes in PostgreSQL, 64 in MySQL.
        let tooLong = String(repeating: "a", count: kind == .postgres ? 64 : 65)
        for bad in ["x; DROP TABLE kv", "a.b.c", "1abc", "", "tab le", "a`b", tooLong] {
            #expect(kind.refusesTableName(bad), "\(bad)")
        }
    }
}

/// A server of its own for each test: they stop and start it.
@Suite("SQL stores, database restarts")
struct SQLStoreRestartTests {
    @Test(
        "the database going away gives errors, not hangs; the store reconnects by itself and keeps what was committed",
        arguments: SQLStoreKind.allCases)
    func restart(kind: SQLStoreKind) async throws {
        let database = try kind.databaseOnPrivateServer()
        let store = try await database.open()
        _ = try await store.saveNew(sampleTransaction("before"), branches: sampleBranches("before"))
        database.stopServer()
        let started = ContinuousClock.now
        for i in 0..<5 {
            do {
                _ = try await store.saveNew(sampleTransaction("down\(i)"), branches: [])
                Issue.record("a write succeeded with the database down")
            } catch {
                #expect(kind.isStoreError(error) && "\(error)".contains("database"), "\(error)")
            }
            do {
                _ = try await store.transaction(gid: "before")
                Issue.record("a read succeeded with the database down")
            } catch {
                #expect(kind.isStoreError(error), "\(error)")
            }
        }
        // Bounded by the back-off and the connect timeout, not by a hang.
        #expect(ContinuousClock.now - started < .seconds(20))
        try database.startServer()
        var back = false
        for _ in 0..<100 {
            do {
                _ = try await store.saveNew(sampleTransaction("after"), branches: [])
                back = true
                break
            } catch {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        #expect(back, "the store reconnected")
        // The reader connection reconnects on its own back-off (MySQL's at most 5 s after its last failed attempt;
        // PostgreSQL's reader too may still be waiting when the writer is back).
        var before: GlobalTransaction?
        var readError: (any Error)?
        for _ in 0..<100 where before == nil {
            do { before = try await store.transaction(gid: "before") } catch {
                readError = error
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        #expect(before != nil, "\(String(describing: readError))")
        #expect(try await store.branches(gid: "before").count == 4)
        await store.close()
        database.stopServer()
    }
}
