import DTMCore
import Foundation
import Testing

/// What only the MySQL store has: DTM's 64 KiB TEXT and BLOB columns, local times. What it shares with the PostgreSQL
/// store is in `SQLStoreTests`. Against the test process's private MariaDB server.
@Suite("MySQL store")
struct MySQLStoreTests {
    @Test("ext_data and a branch body beyond TEXT's and BLOB's 65,535 bytes are refused, and nothing of the transaction is kept")
    func textAndBlobWidths() async throws {
        let store = try await SQLStoreKind.mysql.freshDatabase().open()
        var big = sampleTransaction("big")
        big.extData = String(repeating: "x", count: 65_536)
        await #expect(throws: DTMError.invalidArgument("ext_data is 65536 bytes; its column holds at most 65535 in DTM's MySQL schema")) {
            _ = try await store.saveNew(big, branches: [])
        }
        var branch = sampleBranches("blob")[0]
        branch.binData = Array(repeating: 7, count: 65_536)
        await #expect(throws: DTMError.self) { _ = try await store.saveNew(sampleTransaction("blob"), branches: [branch]) }
        #expect(try await store.transaction(gid: "blob") == nil)
        await store.close()
    }

    @Test("times are the process's local time, as DTM's gorm DSN (loc=Local) writes them")
    func localTimes() async throws {
        let database = try SQLStoreKind.mysql.freshDatabase()
        let store = try await database.open()
        var t = sampleTransaction("local")
        t.createTime = Timestamp(microseconds: 1_800_000_000_000_000)
        _ = try await store.saveNew(t, branches: [])
        var clock = time_t(1_800_000_000)
        var parts = tm()
        _ = localtime_r(&clock, &parts)
        let expected = String(
            format: "%04d-%02d-%02d %02d:%02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour),
            Int(parts.tm_min), Int(parts.tm_sec))
        #expect(try database.sql("SELECT create_time FROM trans_global WHERE gid = 'local'") == expected)
        await store.close()
    }
}
