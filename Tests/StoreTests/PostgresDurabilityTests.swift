import DTMCore
import DTMTestSupport
import Logging
@testable import PostgresStore
import Testing

/// Which writes wait for PostgreSQL's WAL flush: what a session commits with is what its triggers see in
/// `current_setting('synchronous_commit')`, so a trigger records it for every write the store makes.
@Suite("PostgreSQL durability")
struct PostgresDurabilityTests {
    @Test("ordered writes commit with synchronous_commit off, on the ordered link; durable ones with it on")
    func orderedWritesSkipTheFlush() async throws {
        let database = try SQLStoreKind.postgres.freshDatabase()
        let store = try await database.open()
        _ = try database.sql(
            """
            CREATE TABLE seen (n serial, what text, sync text);
            CREATE FUNCTION note_sync() RETURNS trigger AS $$ BEGIN
              INSERT INTO seen (what, sync) VALUES (TG_TABLE_NAME || ' ' || TG_OP, current_setting('synchronous_commit'));
              RETURN NEW; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER note_global AFTER INSERT OR UPDATE ON trans_global FOR EACH ROW EXECUTE FUNCTION note_sync();
            """)
        func seen() throws -> String { try database.sql("SELECT string_agg(sync, ',' ORDER BY n) FROM seen") }
        func forget() throws { _ = try database.sql("DELETE FROM seen") }

        #expect(try await store.saveNew(sampleTransaction("g1"), branches: sampleBranches("g1")) == nil)
        #expect(try seen() == "on", "the submit is durable")
        try forget()
        let update = BranchStatusUpdate(branchID: "01", op: "action", status: .succeed, finishTime: t0)
        try await store.touchCronTime(
            gid: "g1", requiring: .submitted, interval: 10, nextCronTime: t0, branchUpdates: [], now: t0, durability: .ordered)
        try await store.touchCronTime(
            gid: "g1", requiring: .submitted, interval: 10, nextCronTime: t0, branchUpdates: [update], now: t0, durability: .ordered)
        try await store.changeStatus(
            gid: "g1", from: .submitted, to: .aborting, change: StatusChange(), branchUpdates: [], now: t0, durability: .ordered)
        #expect(try seen() == "off,off,off", "schedule moves and a status no client waits for are ordered")
        try forget()
        try await store.changeStatus(
            gid: "g1", from: .aborting, to: .failed, change: StatusChange(), branchUpdates: [], now: t0, durability: .durable)
        #expect(try seen() == "on", "the status a client waits for is durable")

        // Branch rows: a trigger of their own, one write of one update and one of two.
        _ = try database.sql(
            "CREATE TRIGGER note_branch AFTER UPDATE ON trans_branch_op FOR EACH STATEMENT EXECUTE FUNCTION note_sync()")
        #expect(try await store.saveNew(sampleTransaction("g2"), branches: sampleBranches("g2")) == nil)
        try forget()
        try await store.updateBranches(gid: "g2", requiring: .submitted, updates: [update], now: t0, durability: .ordered)
        var second = update
        second.branchID = "02"
        try await store.updateBranches(gid: "g2", requiring: .submitted, updates: [update, second], now: t0, durability: .ordered)
        try await store.updateBranches(gid: "g2", requiring: .submitted, updates: [second], now: t0, durability: .durable)
        #expect(try seen() == "off,off,on")
        #expect(try await store.branches(gid: "g2").filter { $0.op == "action" }.map(\.status) == [.succeed, .succeed])
        await store.close()
    }
}
