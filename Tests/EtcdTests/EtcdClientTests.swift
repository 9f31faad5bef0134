import DTMTestSupport
import Foundation
import Logging
import Testing
@testable import Etcd

/// The etcd client, publisher and subscriber against a real etcd server (one per test).
@Suite("etcd client against a real etcd", .serialized)
struct EtcdClientTests {
    let logger = Logger(label: "etcd-test")

    func client(_ etcd: EtcdTestServer, hosts: [String]? = nil, user: String = "", password: String = "") -> EtcdClient {
        EtcdClient(configuration: .init(hosts: hosts ?? [etcd.endpoint], user: user, password: password), logger: logger)
    }

    /// Polls `condition` every 50 ms for up to `seconds`.
    func eventually(_ seconds: Double, _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    @Test("put, prefix range, lease grant and revoke")
    func kvAndLeases() async throws {
        let etcd = try EtcdTestServer()
        let c = client(etcd)
        let r1 = try await c.put(key: "svc/a", value: "127.0.0.1:1")
        let r2 = try await c.put(key: "svc/b", value: "127.0.0.1:2")
        try await c.put(key: "svcx/c", value: "other")
        #expect(r2 > r1)
        let (revision, kvs, more) = try await c.range(prefix: "svc/")
        #expect(!more)
        #expect(revision >= r2 + 1)
        #expect(kvs.map(\.key) == ["svc/a", "svc/b"])
        #expect(kvs.map(\.value) == ["127.0.0.1:1", "127.0.0.1:2"])
        let limited = try await c.range(prefix: "svc", limit: 2)
        #expect(limited.kvs.map(\.key) == ["svc/a", "svc/b"])
        #expect(limited.more, "a third key (svcx/c) was left out")
        let lease = try await c.grantLease(ttl: 10)
        try await c.put(key: "svc/leased", value: "v", lease: lease)
        #expect(try await c.range(prefix: "svc/leased").kvs.first?.lease == lease)
        try await c.revokeLease(lease)
        #expect(try await c.range(prefix: "svc/leased").kvs.isEmpty)
        await c.close()
    }

    @Test("a watch delivers puts and deletes under its prefix only, from the revision asked for")
    func watch() async throws {
        let etcd = try EtcdTestServer()
        let c = client(etcd)
        let start = try await c.put(key: "w/0", value: "before")
        let watch = try await c.watch(prefix: "w/", after: start)
        try await c.put(key: "w/1", value: "one")
        try await c.put(key: "other/1", value: "ignored")
        _ = try etcd.etcdctl(["del", "w/0"])
        var seen: [String] = []
        while seen.count < 2 {
            for change in try await watch.next() { seen.append("\(change.key)=\(change.value ?? "<deleted>")") }
        }
        #expect(seen == ["w/1=one", "w/0=<deleted>"])
        watch.cancel()
        await c.close()
    }

    @Test("keep-alive renews a lease beyond its TTL; a revoked lease answers TTL 0")
    func keepAlive() async throws {
        let etcd = try EtcdTestServer()
        let c = client(etcd)
        let lease = try await c.grantLease(ttl: 2)
        try await c.put(key: "k/alive", value: "v", lease: lease)
        let stream = try await c.keepAliveStream()
        for _ in 0..<6 {
            #expect(try await stream.refresh(lease))
            #expect(try await stream.next() > 0)
            try await Task.sleep(for: .milliseconds(600))
        }
        #expect(try await c.range(prefix: "k/alive").kvs.count == 1, "the key outlived its 2 s TTL by renewals")
        try await c.revokeLease(lease)
        #expect(try await stream.refresh(lease))
        #expect(try await stream.next() <= 0)
        stream.cancel()
        await c.close()
    }

    @Test("the publisher registers key/<lease decimal>, puts a deleted key back, survives an etcd restart and revokes when stopped")
    func publisher() async throws {
        let etcd = try EtcdTestServer()
        let c = client(etcd)
        let publisher = ServicePublisher(client: c, key: "dtmservice", value: "127.0.0.1:36790", ttl: 10, logger: logger)
        let task = Task { await publisher.run() }
        #expect(await eventually(5) { publisher.registeredKey != nil })
        let key = try #require(publisher.registeredKey)
        let lease = try #require(Int64(key.dropFirst("dtmservice/".count)))
        let stored = try await c.range(prefix: "dtmservice/").kvs
        #expect(stored == [EtcdKeyValue(key: key, value: "127.0.0.1:36790", lease: lease)])

        _ = try etcd.etcdctl(["del", key])
        #expect(try await eventually(5) { try await c.range(prefix: "dtmservice/").kvs.map(\.key) == [key] }, "deleted key put back")

        try etcd.restart()
        #expect(
            await eventually(15) {
                let keys = try? await c.range(prefix: "dtmservice/").kvs.map(\.key)
                return keys.map { $0.count == 1 && $0 != [key] } ?? false
            }, "registered again under a new lease after the etcd restart, the old lease revoked")

        task.cancel()
        await task.value
        #expect(try await c.range(prefix: "dtmservice/").kvs.isEmpty, "revoked at once when stopped")
        await c.close()
    }

    @Test("the subscriber follows registrations and removals, de-duplicates and rotates, and keeps its set while etcd is down")
    func subscriber() async throws {
        let etcd = try EtcdTestServer()
        let c = client(etcd)
        try await c.put(key: "user.rpc/1", value: "127.0.0.1:7001")
        try await c.put(key: "user.rpc/2", value: "127.0.0.1:7002")
        try await c.put(key: "user.rpc/3", value: "127.0.0.1:7002")  // the same address twice
        try await c.put(key: "user.rpcx/1", value: "127.0.0.1:9999")  // another service
        let subscriber = ServiceSubscriber(client: c, key: "user.rpc", logger: logger)
        let task = Task { await subscriber.run() }
        await subscriber.waitForFirstRead()
        let first = subscriber.addresses()
        #expect(Set(first) == ["127.0.0.1:7001", "127.0.0.1:7002"])
        #expect(first.count == 2)
        #expect(subscriber.addresses().first != first.first, "round-robin")
        subscriber.markFailed("127.0.0.1:7001")
        #expect(subscriber.addresses().last == "127.0.0.1:7001")
        #expect(subscriber.addresses().last == "127.0.0.1:7001")

        try await c.put(key: "user.rpc/4", value: "127.0.0.1:7004")
        #expect(await eventually(5) { subscriber.addresses().contains("127.0.0.1:7004") })
        _ = try etcd.etcdctl(["del", "user.rpc/1"])
        #expect(await eventually(5) { !subscriber.addresses().contains("127.0.0.1:7001") })

        etcd.stop()
        #expect(await eventually(5) { subscriber.lastError != nil })
        #expect(Set(subscriber.addresses()) == ["127.0.0.1:7002", "127.0.0.1:7004"], "last known set kept")
        try etcd.start()
        try await c.put(key: "user.rpc/5", value: "127.0.0.1:7005")
        #expect(await eventually(10) { subscriber.addresses().contains("127.0.0.1:7005") }, "watch restored after etcd came back")
        task.cancel()
        await task.value
        await c.close()
    }

    @Test("values the address filter refuses (or longer than 1 KiB) are never offered; `limit` bounds the answer")
    func filteredValues() async throws {
        let etcd = try EtcdTestServer()
        let c = client(etcd)
        try await c.put(key: "h.rpc/1", value: "evil:1/p.S/M")
        try await c.put(key: "h.rpc/2", value: String(repeating: "a", count: EtcdEntryLimits.maxValueLength) + ":1")
        try await c.put(key: "h.rpc/3", value: "")
        try await c.put(key: "h.rpc/4", value: "127.0.0.1:7001")
        try await c.put(key: "h.rpc/5", value: "127.0.0.1:7002")
        let subscriber = ServiceSubscriber(
            client: c, key: "h.rpc", addressOf: { $0.contains("/") || $0.isEmpty ? nil : $0 }, logger: logger)
        let task = Task { await subscriber.run() }
        await subscriber.waitForFirstRead()
        #expect(Set(subscriber.addresses()) == ["127.0.0.1:7001", "127.0.0.1:7002"])
        #expect(subscriber.addresses(limit: 1).count == 1)
        #expect(subscriber.addresses(limit: 0).isEmpty)
        task.cancel()
        await task.value
        await c.close()
    }

    @Test("discovery resolves through one watch per service, and stops a watch no call used for idleWatch")
    func discoveryIdleWatches() async throws {
        let etcd = try EtcdTestServer()
        let c = client(etcd)
        try await c.put(key: "a.rpc/1", value: "127.0.0.1:7001")
        try await c.put(key: "b.rpc/1", value: "127.0.0.1:7002")
        let discovery = EtcdDiscovery(addressOf: { $0 }, idleWatch: .milliseconds(300), logger: logger)
        #expect(try await discovery.addresses(hosts: [etcd.endpoint], key: "a.rpc").get() == ["127.0.0.1:7001"])
        #expect(try await discovery.addresses(hosts: [etcd.endpoint], key: "a.rpc").get() == ["127.0.0.1:7001"])
        #expect(discovery.watchedServiceCount == 1)
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await discovery.addresses(hosts: [etcd.endpoint], key: "b.rpc").get() == ["127.0.0.1:7002"])
        #expect(discovery.watchedServiceCount == 1, "a.rpc's idle watch was stopped when b.rpc was watched")
        guard case .failure(let none) = await discovery.addresses(hosts: [etcd.endpoint], key: "c.rpc") else {
            Issue.record("an unregistered service resolved")
            return
        }
        #expect(none.message.contains("c.rpc/"))
        await discovery.shutdown()
        await c.close()
    }

    @Test("the revision after one etcd answered saturates and is never below 1")
    func revisionAfter() {
        #expect(EtcdClient.revision(after: 41) == 42)
        #expect(EtcdClient.revision(after: .max) == .max)
        #expect(EtcdClient.revision(after: -5) == 1)
        #expect(EtcdClient.revision(after: .min) == 1)
    }

    @Test("at most 32 addresses are kept")
    func cap() async throws {
        let etcd = try EtcdTestServer()
        let c = client(etcd)
        for i in 0..<40 { try await c.put(key: "many.rpc/\(i)", value: "127.0.0.1:\(10000 + i)") }
        let subscriber = ServiceSubscriber(client: c, key: "many.rpc", logger: logger)
        let task = Task { await subscriber.run() }
        await subscriber.waitForFirstRead()
        #expect(subscriber.addresses().count == ServiceSubscriber.maxAddresses)
        task.cancel()
        await task.value
        await c.close()
    }

    @Test("with two hosts, the first one down, the client uses the second")
    func failover() async throws {
        let etcd = try EtcdTestServer()
        let closed = try LoopbackPort.free()
        let c = client(etcd, hosts: ["127.0.0.1:\(closed)", etcd.endpoint])
        try await c.put(key: "f/1", value: "v")
        #expect(try await c.range(prefix: "f/").kvs.count == 1)
        await c.close()
    }

    @Test("with authentication enabled, the client authenticates and sends the token; wrong credentials are an error naming the user")
    func authentication() async throws {
        let etcd = try EtcdTestServer()
        _ = try etcd.etcdctl(["user", "add", "root", "--new-user-password=rootpw"])
        _ = try etcd.etcdctl(["auth", "enable"])
        let c = client(etcd, user: "root", password: "rootpw")
        try await c.put(key: "a/1", value: "v")
        #expect(try await c.range(prefix: "a/").kvs.count == 1)
        let anonymous = client(etcd)
        await #expect(throws: EtcdError.self) { try await anonymous.put(key: "a/2", value: "v") }
        let wrong = client(etcd, user: "root", password: "nope")
        do {
            try await wrong.put(key: "a/3", value: "v")
            Issue.record("wrong password accepted")
        } catch {
            #expect("\(error)".contains("root"))
        }
        await c.close()
        await anonymous.close()
        await wrong.close()
    }
}
