import DTMCore
import DTMTestSupport
import Foundation
import Logging
@testable import MySQLStore
import Testing

/// What only the MySQL store has: several coordinators on one database, a server that goes away, DTM's column
/// widths, rows other programs wrote. Against the test process's private MariaDB server.
@Suite("MySQL store")
struct MySQLStoreTests {
    let logger = Logger(label: "test")

    private func open(_ c: MySQLStoreConfiguration, reset: Bool = false) async throws -> MySQLStore {
        try await MySQLStore.open(c, reset: reset, logger: logger)
    }

    private func sql(_ text: String, _ c: MySQLStoreConfiguration) throws -> String {
        try MySQLTestServer.shared.get().sql(text, database: c.database).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("two coordinators claiming at once take disjoint sets of due transactions, and together all of them")
    func disjointClaims() async throws {
        let c = try TempDB.mysql()
        let a = try await open(c)
        let b = try await open(c)
        for i in 0..<200 {
            var t = sampleTransaction("due\(i)")
            t.nextCronTime = t0
            _ = try await a.saveNew(t, branches: [])
        }
        let now = t0.adding(seconds: 10)
        func drain(_ store: MySQLStore, _ owner: String) async throws -> [String] {
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
        let owners = try sql("SELECT owner, count(*) FROM trans_global GROUP BY owner ORDER BY owner", c)
        #expect(owners.contains("a\t\(ga.count)") && owners.contains("b\t\(gb.count)"), "\(owners)")
        await a.close()
        await b.close()
    }

    @Test("compare-and-set from two coordinators at once: exactly one wins each transaction")
    func concurrentCAS() async throws {
        let c = try TempDB.mysql()
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

    @Test("a statement the server refuses fails alone: the other writes of its batch commit, and share commits")
    func poisonInBatch() async throws {
        let c = try TempDB.mysql()
        let store = try await open(c)
        // The server refuses the poison's branch rows (url NULL in a NOT NULL column, in strict mode).
        _ = try sql(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON trans_branch_op FOR EACH ROW SET NEW.url = IF(NEW.gid = 'poison', NULL, NEW.url)", c)
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
        #expect(results["poison"]??.contains("1048") == true, "\(String(describing: results["poison"]))")
        // The poison's global row was inserted before its branches were refused: the rollback took it away too.
        #expect(try sql("SELECT count(*) FROM trans_global", c) == "63")
        #expect(try sql("SELECT count(*) FROM trans_branch_op", c) == "252")
        #expect(store.commitCount < 40, "writes shared commits: \(store.commitCount)")
        await store.close()
    }

    @Test("saves that share statements each get their own answer; a duplicate gid among them is found; branch updates too")
    func sharedStatements() async throws {
        let c = try TempDB.mysql()
        let store = try await open(c)
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
        #expect(try sql("SELECT count(*) FROM trans_global", c) == "80")
        #expect(store.commitCount - commitsBefore < 60, "writes shared commits: \(store.commitCount - commitsBefore) for 100")
        await store.close()
    }

    @Test("a row another program wrote that the model cannot read is set aside for an hour, not claimed again and again")
    func unreadableRowParked() async throws {
        let c = try TempDB.mysql()
        let store = try await open(c)
        var good = sampleTransaction("good")
        good.nextCronTime = t0
        _ = try await store.saveNew(good, branches: [])
        _ = try sql(
            """
            INSERT INTO trans_global (gid, trans_type, status, query_prepared, protocol, next_cron_time, next_cron_interval)
            VALUES ('bogus', 'no-such-mode', 'submitted', '', 'http', '2027-01-15 08:00:00', 10)
            """, c)
        let now = Timestamp(microseconds: 1_900_000_000_000_000)
        let claimed = try await store.claimDue(dueBefore: now, leaseUntil: now.adding(seconds: 10), owner: "me", limit: 10, now: now)
        #expect(claimed.map(\.gid) == ["good"])
        let parked = try sql("SELECT UNIX_TIMESTAMP(next_cron_time) FROM trans_global WHERE gid = 'bogus'", c)
        #expect(Int64(parked) == 1_900_003_600, "\(parked)")
        #expect(try await store.claimDue(dueBefore: now, leaseUntil: now, owner: "me", limit: 10, now: now).isEmpty)
        #expect(try await store.scan(position: nil, limit: 10, filter: TransactionFilter()).transactions.map(\.gid) == ["good"])
        await store.close()
    }

    @Test("values DTM's columns cannot hold are refused naming the field; a reason the server writes is cut to fit")
    func columnWidths() async throws {
        let store = try await open(try TempDB.mysql())
        let long = String(repeating: "g", count: 129)
        await #expect(throws: DTMError.invalidArgument("gid is longer than 128 characters, the width of its column in DTM's MySQL schema")) {
            _ = try await store.saveNew(sampleTransaction(long), branches: [])
        }
        var nul = sampleTransaction("nul")
        nul.customData = "a\u{0}b"
        await #expect(throws: DTMError.invalidArgument("custom_data contains a NUL character, which the store does not keep")) {
            _ = try await store.saveNew(nul, branches: [])
        }
        var big = sampleTransaction("big")
        big.extData = String(repeating: "x", count: 65_536)
        await #expect(throws: DTMError.invalidArgument("ext_data is 65536 bytes; its column holds at most 65535 in DTM's MySQL schema")) {
            _ = try await store.saveNew(big, branches: [])
        }
        var branch = sampleBranches("blob")[0]
        branch.binData = Array(repeating: 7, count: 65_536)
        await #expect(throws: DTMError.self) { _ = try await store.saveNew(sampleTransaction("blob"), branches: [branch]) }
        #expect(try await store.transaction(gid: "blob") == nil)
        // 1024 characters of 4 bytes each fit: widths count characters (utf8mb4 holds any of them).
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

    @Test("times beyond datetime's range are clamped into it, not refused; due times round up, others to the nearest second")
    func times() async throws {
        let store = try await open(try TempDB.mysql())
        var t = sampleTransaction("far", status: .prepared)
        t.createTime = .distantPast
        t.nextCronTime = .distantFuture
        t.finishTime = Timestamp(microseconds: 0)
        t.updateTime = Timestamp(microseconds: 1_500_000)
        #expect(try await store.saveNew(t, branches: []) == nil)
        let loaded = try #require(try await store.transaction(gid: "far"))
        #expect(loaded.createTime.microseconds < -30_000_000_000_000_000)
        #expect(try #require(loaded.nextCronTime).microseconds > 253_000_000_000_000_000)
        #expect(loaded.finishTime == Timestamp(microseconds: 0))
        #expect(loaded.updateTime == Timestamp(microseconds: 2_000_000))
        try await store.touchCronTime(gid: "far", requiring: .prepared, interval: .max, nextCronTime: Timestamp(microseconds: 1_000_001), now: t0)
        let touched = try #require(try await store.transaction(gid: "far"))
        #expect(touched.nextCronInterval == Int64(Int32.max))
        #expect(touched.nextCronTime == Timestamp(microseconds: 2_000_000))
        await store.close()
    }

    @Test("times are the process's local time, as DTM's gorm DSN (loc=Local) writes them")
    func localTimes() async throws {
        let c = try TempDB.mysql()
        let store = try await open(c)
        var t = sampleTransaction("local")
        t.createTime = Timestamp(microseconds: 1_800_000_000_000_000)
        _ = try await store.saveNew(t, branches: [])
        var clock = time_t(1_800_000_000)
        var parts = tm()
        _ = localtime_r(&clock, &parts)
        let expected = String(
            format: "%04d-%02d-%02d %02d:%02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour),
            Int(parts.tm_min), Int(parts.tm_sec))
        #expect(try sql("SELECT create_time FROM trans_global WHERE gid = 'local'", c) == expected)
        await store.close()
    }

    @Test("schema: DTM's tables and keys, our migrations once under a lock however many open together; -r drops it; a newer one is refused")
    func migrations() async throws {
        let c = try TempDB.mysql()
        let stores = try await withThrowingTaskGroup(of: MySQLStore.self) { group in
            for _ in 0..<3 { group.addTask { try await self.open(c) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        _ = try await stores[0].saveNew(sampleTransaction("kept"), branches: [])
        for s in stores { await s.close() }
        #expect(try sql("SELECT version FROM swift_dtm_schema", c) == "\(MySQLSchema.currentVersion)")
        #expect(try sql("SELECT count(*) FROM swift_dtm_schema", c) == "1")
        let indexes = try sql(
            "SELECT DISTINCT CONCAT(table_name, '.', index_name) FROM information_schema.statistics WHERE table_schema = '\(c.database)' ORDER BY 1", c)
        for name in [
            "kv.uniq_k", "trans_branch_op.gid_uniq", "trans_global.gid", "trans_global.owner", "trans_global.status_next_cron_time",
            "trans_global.trans_global_due", "trans_global.trans_global_finished",
        ] {
            #expect(indexes.split(separator: "\n").contains(Substring(name)), "index \(name): \(indexes)")
        }
        #expect(
            try sql("SELECT ENGINE, TABLE_COLLATION FROM information_schema.tables WHERE table_schema = '\(c.database)' AND table_name = 'trans_global'", c)
                .hasPrefix("InnoDB\tutf8mb4"))
        var store = try await open(c)
        #expect(try await store.transaction(gid: "kept") != nil)
        await store.close()
        store = try await open(c, reset: true)
        #expect(try await store.transaction(gid: "kept") == nil)
        await store.close()
        _ = try sql("UPDATE swift_dtm_schema SET version = -1", c)
        await #expect(throws: MySQLStoreError.self) { _ = try await self.open(c) }
        _ = try sql("UPDATE swift_dtm_schema SET version = 99", c)
        do {
            _ = try await open(c)
            Issue.record("a newer schema was accepted")
        } catch {
            #expect("\(error)".contains("newer than this server"), "\(error)")
        }
    }

    @Test("configured table names are used, and names that are not identifiers are refused")
    func tableNames() async throws {
        var c = try TempDB.mysql()
        c.tables = try MySQLTables(global: "my_global", branch: "my_branch")
        let store = try await open(c)
        _ = try await store.saveNew(sampleTransaction("t"), branches: sampleBranches("t"))
        #expect(try sql("SELECT count(*) FROM my_branch", c) == "4")
        await store.close()
        for bad in ["x; DROP TABLE kv", "a.b.c", "1abc", "", "tab le", "a`b", String(repeating: "a", count: 65)] {
            #expect(throws: MySQLTables.Invalid.self) { try MySQLTables(global: bad) }
        }
    }
}
