import DTMCore
import DTMTestSupport
import Foundation
import Logging
@testable import PostgresStore
import Testing

/// What only the PostgreSQL store has: several coordinators on one database, a server that goes away, DTM's
/// column widths, rows other programs wrote. Against the test process's private cluster.
@Suite("PostgreSQL store")
struct PostgresStoreTests {
    let logger = Logger(label: "test")

    private func open(_ c: PostgresStoreConfiguration, reset: Bool = false) async throws -> PostgresStore {
        try await PostgresStore.open(c, reset: reset, logger: logger)
    }

    /// psql's output without the "SET" line of the search_path.
    private func psql(_ sql: String, schema: String) throws -> String {
        let out = try PostgresTestServer.shared.get().psql("SET search_path TO \(schema); \(sql)")
        return out.hasPrefix("SET\n") ? String(out.dropFirst(4)) : out
    }

    @Test("two coordinators claiming at once take disjoint sets of due transactions, and together all of them")
    func disjointClaims() async throws {
        let c = try TempDB.postgres()
        let a = try await open(c)
        let b = try await open(c)
        for i in 0..<200 {
            var t = sampleTransaction("due\(i)")
            t.nextCronTime = t0
            _ = try await a.saveNew(t, branches: [])
        }
        let now = t0.adding(seconds: 10)
        func drain(_ store: PostgresStore, _ owner: String) async throws -> [String] {
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
        let owners = try psql("SELECT owner, count(*) FROM trans_global GROUP BY owner ORDER BY owner", schema: c.schema)
        #expect(owners.contains("a|\(ga.count)") && owners.contains("b|\(gb.count)"), "\(owners)")
        await a.close()
        await b.close()
    }

    @Test("compare-and-set from two coordinators at once: exactly one wins each transaction")
    func concurrentCAS() async throws {
        let c = try TempDB.postgres()
        let a = try await open(c)
        let b = try await open(c)
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

    @Test("a statement the server refuses fails alone: the other writes of its batch commit")
    func poisonInBatch() async throws {
        let c = try TempDB.postgres()
        let store = try await open(c)
        _ = try psql(
            """
            CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN
              IF NEW.gid = 'poison' THEN RAISE EXCEPTION 'poison refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_poison BEFORE INSERT ON trans_global FOR EACH ROW EXECUTE FUNCTION refuse_poison();
            """, schema: c.schema)
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
        #expect(results["poison"]??.contains("poison refused") == true, "\(String(describing: results["poison"]))")
        #expect(try psql("SELECT count(*) FROM trans_global", schema: c.schema).hasPrefix("63"))
        #expect(try psql("SELECT count(*) FROM trans_branch_op", schema: c.schema).hasPrefix("252"))
        #expect(store.commitCount < 32, "writes shared commits, and the refused one did not make its batch commit one by one: \(store.commitCount)")
        await store.close()
    }

    @Test("writes that share one statement each get their own answer: saves, branch updates and status changes")
    func sharedStatements() async throws {
        let c = try TempDB.postgres()
        let store = try await open(c)
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

    @Test("a row another program wrote that the model cannot read is set aside for an hour, not claimed again and again")
    func unreadableRowParked() async throws {
        let c = try TempDB.postgres()
        let store = try await open(c)
        var good = sampleTransaction("good")
        good.nextCronTime = t0
        _ = try await store.saveNew(good, branches: [])
        _ = try psql(
            """
            INSERT INTO trans_global (gid, trans_type, status, query_prepared, protocol, next_cron_time, next_cron_interval)
            VALUES ('bogus', 'no-such-mode', 'submitted', '', 'http', '2027-01-15 08:00:00+08', 10)
            """, schema: c.schema)
        let now = Timestamp(microseconds: 1_900_000_000_000_000)
        let claimed = try await store.claimDue(dueBefore: now, leaseUntil: now.adding(seconds: 10), owner: "me", limit: 10, now: now)
        #expect(claimed.map(\.gid) == ["good"])
        let parked = try psql("SELECT extract(epoch FROM next_cron_time)::bigint FROM trans_global WHERE gid = 'bogus'", schema: c.schema)
        #expect(Int64(parked.trimmingCharacters(in: .whitespacesAndNewlines)) == 1_900_003_600)
        #expect(try await store.claimDue(dueBefore: now, leaseUntil: now, owner: "me", limit: 10, now: now).isEmpty)
        #expect(try await store.scan(position: nil, limit: 10, filter: TransactionFilter()).transactions.map(\.gid) == ["good"])
        await store.close()
    }

    @Test("values DTM's columns cannot hold are refused naming the field; a reason the server writes is cut to fit")
    func columnWidths() async throws {
        let c = try TempDB.postgres()
        let store = try await open(c)
        let long = String(repeating: "g", count: 129)
        await #expect(throws: DTMError.invalidArgument("gid is longer than 128 characters, the width of its column in DTM's PostgreSQL schema")) {
            _ = try await store.saveNew(sampleTransaction(long), branches: [])
        }
        var nul = sampleTransaction("nul")
        nul.customData = "a\u{0}b"
        await #expect(throws: DTMError.invalidArgument("custom_data contains a NUL character, which PostgreSQL text cannot hold")) {
            _ = try await store.saveNew(nul, branches: [])
        }
        // 1024 characters of 4 bytes each fit: widths count characters.
        var wide = sampleTransaction("wide")
        wide.rollbackReason = String(repeating: "😀", count: 1024)
        #expect(try await store.saveNew(wide, branches: []) == nil)
        _ = try await store.saveNew(sampleTransaction("r"), branches: [])
        try await store.changeStatus(
            gid: "r", from: .submitted, to: .aborting, change: StatusChange(rollbackReason: String(repeating: "é\u{0}", count: 3000)), now: t0)
        let reason = try #require(try await store.transaction(gid: "r")).rollbackReason
        #expect(reason == String(repeating: "é", count: 1024))
        await store.close()
    }

    @Test("times beyond PostgreSQL's range are clamped into it, not refused")
    func extremeTimes() async throws {
        let store = try await open(try TempDB.postgres())
        var t = sampleTransaction("far", status: .prepared)
        t.createTime = .distantPast
        t.nextCronTime = .distantFuture
        t.finishTime = Timestamp(microseconds: 0)
        #expect(try await store.saveNew(t, branches: []) == nil)
        let loaded = try #require(try await store.transaction(gid: "far"))
        #expect(loaded.createTime.microseconds < -200_000_000_000_000_000)
        #expect(try #require(loaded.nextCronTime).microseconds > 9_000_000_000_000_000_000)
        #expect(loaded.finishTime == Timestamp(microseconds: 0))
        try await store.touchCronTime(gid: "far", requiring: .prepared, interval: .max, nextCronTime: .distantFuture, now: .distantFuture)
        #expect(try await store.transaction(gid: "far")?.nextCronInterval == Int64(Int32.max))
        await store.close()
    }

    @Test("schema: version recorded; reopening keeps data; -r drops it; a newer database is refused")
    func migrations() async throws {
        let c = try TempDB.postgres()
        var store = try await open(c)
        _ = try await store.saveNew(sampleTransaction("kept"), branches: [])
        await store.close()
        #expect(try psql("SELECT version FROM swift_dtm_schema", schema: c.schema).hasPrefix("\(PostgresSchema.currentVersion)"))
        let indexes = try psql("SELECT indexname FROM pg_indexes WHERE schemaname = '\(c.schema)' ORDER BY 1", schema: c.schema)
        for name in ["gid", "gid_branch_uniq", "owner", "status_next_cron_time", "trans_global_due", "trans_global_finished", "uniq_k"] {
            #expect(indexes.split(separator: "\n").contains(Substring(name)), "index \(name): \(indexes)")
        }
        store = try await open(c)
        #expect(try await store.transaction(gid: "kept") != nil)
        await store.close()
        store = try await open(c, reset: true)
        #expect(try await store.transaction(gid: "kept") == nil)
        await store.close()
        _ = try psql("UPDATE swift_dtm_schema SET version = -1", schema: c.schema)
        do {
            _ = try await open(c)
            Issue.record("a negative schema version was accepted")
        } catch {
            #expect("\(error)".contains("is not valid"), "\(error)")
        }
        _ = try psql("UPDATE swift_dtm_schema SET version = 99", schema: c.schema)
        do {
            _ = try await open(c)
            Issue.record("a newer schema was accepted")
        } catch {
            #expect("\(error)".contains("newer than this server"), "\(error)")
        }
    }

    @Test("configured table names are used, and names that are not identifiers are refused")
    func tableNames() async throws {
        var c = try TempDB.postgres()
        c.tables = try PostgresTables(global: "my_global", branch: "my_branch")
        let store = try await open(c)
        _ = try await store.saveNew(sampleTransaction("t"), branches: sampleBranches("t"))
        #expect(try psql("SELECT count(*) FROM my_branch", schema: c.schema).hasPrefix("4"))
        await store.close()
        for bad in ["x; DROP TABLE kv", "a.b.c", "1abc", "", "tab le", String(repeating: "a", count: 64)] {
            #expect(throws: PostgresTables.Invalid.self) { try PostgresTables(global: bad) }
        }
    }
}

/// A cluster of its own: these tests stop and start it.
@Suite("PostgreSQL store, database restarts")
struct PostgresRestartTests {
    @Test("the database going away gives errors, not hangs; the store reconnects by itself and keeps what was committed")
    func restart() async throws {
        let server = try PostgresTestServer()
        var c = PostgresStoreConfiguration()
        c.port = server.port
        c.user = server.user
        c.database = "postgres"
        c.writerConnections = 2
        c.readerConnections = 1
        let store = try await PostgresStore.open(c, logger: Logger(label: "test"))
        _ = try await store.saveNew(sampleTransaction("before"), branches: sampleBranches("before"))
        server.stop()
        let started = ContinuousClock.now
        for i in 0..<5 {
            do {
                _ = try await store.saveNew(sampleTransaction("down\(i)"), branches: [])
                Issue.record("a write succeeded with the database down")
            } catch let e as PostgresStoreError {
                #expect("\(e)".contains("database"), "\(e)")
            }
            await #expect(throws: PostgresStoreError.self) { _ = try await store.transaction(gid: "before") }
        }
        // Bounded by the back-off and the connect timeout, not by a hang.
        #expect(ContinuousClock.now - started < .seconds(20))
        try server.start()
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
        #expect(try await store.transaction(gid: "before") != nil)
        #expect(try await store.branches(gid: "before").count == 4)
        await store.close()
        server.stop()
    }
}
