import DTMTestSupport
import Foundation
import Logging
import Synchronization
import Testing
@testable import Etcd

/// What one coordinator keeps of etcd is bounded: clusters (the least recently used idle one makes room) and the
/// size of each entry of a watched prefix (larger ones are dropped as they arrive, and counted).
@Suite("etcd discovery bounds against a real etcd", .serialized)
struct EtcdBoundsTests {
    let logger = Logger(label: "etcd-bounds-test")

    /// Polls `condition` every 50 ms for up to `seconds`.
    func eventually(_ seconds: Double, _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    /// `count` distinct loopback ports nothing listens on.
    func deadPorts(_ count: Int) throws -> [Int] {
        var ports: [Int] = []
        while ports.count < count {
            let port = try LoopbackPort.free()
            if !ports.contains(port) { ports.append(port) }
        }
        return ports
    }

    @Test("20 made-up clusters do not block a real one: the least recently used idle cluster makes room; live and pinned ones stay")
    func clusterEviction() async throws {
        let etcd = try EtcdTestServer()
        let writer = EtcdClient(configuration: .init(hosts: [etcd.endpoint]), logger: logger)
        try await writer.put(key: "real.rpc/1", value: "127.0.0.1:7001")
        try await writer.put(key: "late.rpc/1", value: "127.0.0.1:7002")
        let discovery = EtcdDiscovery(addressOf: { $0 }, logger: logger)
        #expect(try await discovery.addresses(hosts: [etcd.endpoint], key: "real.rpc").get() == ["127.0.0.1:7001"])
        let live = try #require(discovery.client(hosts: [etcd.endpoint]))
        let ports = try deadPorts(EtcdDiscovery.maxClusters + 5)
        let pinned = try #require(discovery.client(hosts: ["127.0.0.1:\(ports[0])"], pinned: true))
        for port in ports.dropFirst() {
            guard case .failure(let why) = await discovery.addresses(hosts: ["127.0.0.1:\(port)"], key: "made.up") else {
                Issue.record("a made-up cluster resolved")
                return
            }
            #expect(why.message.contains("made.up/"), "the failure is the missing registration, not a full table: \(why.message)")
        }
        #expect(discovery.clusterCount <= EtcdDiscovery.maxClusters)
        // Another cluster (the same etcd behind a dead first host) still works after them.
        let fresh = ["127.0.0.1:\(ports[1])", etcd.endpoint]
        #expect(try await discovery.addresses(hosts: fresh, key: "late.rpc").get() == ["127.0.0.1:7002"])
        // The watched cluster and the pinned one were never evicted.
        #expect(discovery.client(hosts: [etcd.endpoint]) === live)
        #expect(discovery.client(hosts: ["127.0.0.1:\(ports[0])"]) === pinned)
        #expect(try await discovery.addresses(hosts: [etcd.endpoint], key: "real.rpc").get() == ["127.0.0.1:7001"])
        await discovery.shutdown()
        await writer.close()
    }

    @Test("keys and values too long for a registration are dropped in the first read and in watch events, and counted")
    func oversizedEntries() async throws {
        let etcd = try EtcdTestServer()
        let writer = EtcdClient(configuration: .init(hosts: [etcd.endpoint]), logger: logger)
        let bigValue = String(repeating: "a", count: EtcdEntryLimits.maxValueLength + 1)
        let bigKey = "big.rpc/" + String(repeating: "k", count: EtcdEntryLimits.maxKeySuffixLength + 1)
        try await writer.put(key: "big.rpc/1", value: "127.0.0.1:7001")
        try await writer.put(key: "big.rpc/2", value: bigValue)
        try await writer.put(key: bigKey, value: "127.0.0.1:7003")
        let dropped = Mutex<[EtcdEntryLimits.Reason: Int]>([:])
        let discovery = EtcdDiscovery(addressOf: { $0 }, logger: logger) { reason, count in
            dropped.withLock { $0[reason, default: 0] += count }
        }
        #expect(try await discovery.addresses(hosts: [etcd.endpoint], key: "big.rpc").get() == ["127.0.0.1:7001"])
        #expect(dropped.withLock { $0 } == [.valueTooLong: 1, .keyTooLong: 1])

        try await writer.put(key: "big.rpc/4", value: bigValue)
        try await writer.put(key: "big.rpc/5", value: "127.0.0.1:7005")
        #expect(
            await eventually(5) {
                (try? await discovery.addresses(hosts: [etcd.endpoint], key: "big.rpc").get().sorted()) == ["127.0.0.1:7001", "127.0.0.1:7005"]
            })
        #expect(dropped.withLock { $0[.valueTooLong] } == 2)
        // A known key overwritten with an oversized value no longer holds its address.
        try await writer.put(key: "big.rpc/1", value: bigValue)
        #expect(await eventually(5) { (try? await discovery.addresses(hosts: [etcd.endpoint], key: "big.rpc").get()) == ["127.0.0.1:7005"] })
        #expect(dropped.withLock { $0[.valueTooLong] } == 3)
        await discovery.shutdown()
        await writer.close()
    }

    @Test("a prefix whose first read exceeds 4 MiB (values of 1.4 MiB) is read in smaller pages: the good address is found, the rest dropped")
    func firstReadOverResponseLimit() async throws {
        let etcd = try EtcdTestServer()
        let writer = EtcdClient(configuration: .init(hosts: [etcd.endpoint]), logger: logger)
        let huge = String(repeating: "h", count: 1_400_000)  // etcd refuses requests over 1.5 MiB
        for i in 0..<4 { try await writer.put(key: "huge.rpc/\(i)", value: huge) }
        try await writer.put(key: "huge.rpc/9", value: "127.0.0.1:7009")
        await #expect(throws: EtcdError.self) { try await writer.range(prefix: "huge.rpc/") }  // over maxResponseSize at once
        let dropped = Mutex(0)
        let discovery = EtcdDiscovery(addressOf: { $0 }, logger: logger) { _, count in dropped.withLock { $0 += count } }
        #expect(try await discovery.addresses(hosts: [etcd.endpoint], key: "huge.rpc").get() == ["127.0.0.1:7009"])
        #expect(dropped.withLock { $0 } == 4)
        await discovery.shutdown()
        await writer.close()
    }

    @Test("the limits: a key's part after its service prefix and the value, in bytes")
    func limits() {
        let prefix = "s.rpc/"
        #expect(EtcdEntryLimits.violation(prefix: prefix, key: prefix + "7587871234567890", value: "127.0.0.1:80") == nil)
        #expect(EtcdEntryLimits.violation(prefix: prefix, key: prefix + String(repeating: "k", count: 256), value: "") == nil)
        #expect(EtcdEntryLimits.violation(prefix: prefix, key: prefix + String(repeating: "k", count: 257), value: "") == .keyTooLong)
        #expect(EtcdEntryLimits.violation(prefix: prefix, key: prefix + "1", value: String(repeating: "é", count: 513)) == .valueTooLong)
    }
}
