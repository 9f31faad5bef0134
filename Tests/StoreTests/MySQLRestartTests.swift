import DTMCore
import Foundation
import Logging
import MySQLStore
import Testing

/// A server of its own: these tests stop and start it.
@Suite("MySQL store, database restarts")
struct MySQLRestartTests {
    @Test("the database going away gives errors, not hangs; the store reconnects by itself and keeps what was committed")
    func restart() async throws {
        let server = try MySQLTestServer()
        var c = MySQLStoreConfiguration()
        c.port = server.port
        c.user = server.user
        c.password = server.password
        c.database = "dtm"
        c.writerConnections = 2
        c.readerConnections = 1
        // The whole suite starts its database servers at once on two cores: a handshake may take longer than 5 s.
        c.connectTimeoutSeconds = 30
        let store = try await MySQLStore.open(c, logger: Logger(label: "test"))
        _ = try await store.saveNew(sampleTransaction("before"), branches: sampleBranches("before"))
        server.stop()
        let started = ContinuousClock.now
        for i in 0..<5 {
            do {
                _ = try await store.saveNew(sampleTransaction("down\(i)"), branches: [])
                Issue.record("a write succeeded with the database down")
            } catch let e as MySQLStoreError {
                #expect("\(e)".contains("database"), "\(e)")
            }
            await #expect(throws: MySQLStoreError.self) { _ = try await store.transaction(gid: "before") }
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
        // The reader connection reconnects on its own back-off (at most 5 s after its last failed attempt).
        var before: GlobalTransaction?
        for _ in 0..<100 where before == nil {
            do { before = try await store.transaction(gid: "before") } catch { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(before != nil)
        #expect(try await store.branches(gid: "before").count == 4)
        await store.close()
        server.stop()
    }
}
