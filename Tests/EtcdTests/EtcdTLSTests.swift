import Foundation
import Logging
import NIOSSL
import Testing
@testable import Etcd

/// The etcd client over TLS against a real etcd that requires client certificates, with throwaway CAs.
@Suite("etcd client over TLS", .serialized)
struct EtcdTLSTests {
    let logger = Logger(label: "etcd-tls-test")

    func context(trusting ca: String, identity: TestPKI?) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.applicationProtocols = ["h2"]
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
        if let identity {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(identity.clientCert).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: identity.clientKey, format: .pem))
        }
        return try NIOSSLContext(configuration: tls)
    }

    @Test("with the CA and a client certificate: put, range and watch work; another CA or no client certificate is refused")
    func tls() async throws {
        let pki = try TestPKI(name: "etcd")
        let other = try TestPKI(name: "other")
        let etcd = try EtcdTestServer(tls: pki)

        let good = EtcdClient(configuration: .init(hosts: [etcd.endpoint], tls: try context(trusting: pki.ca, identity: pki)), logger: logger)
        let revision = try await good.put(key: "tls.rpc/1", value: "127.0.0.1:7001")
        #expect(try await good.range(prefix: "tls.rpc/").kvs.map(\.value) == ["127.0.0.1:7001"])
        let watch = try await good.watch(prefix: "tls.rpc/", after: revision)
        try await good.put(key: "tls.rpc/2", value: "127.0.0.1:7002")
        #expect(try await watch.next().map(\.key) == ["tls.rpc/2"])
        watch.cancel()

        let wrongCA = EtcdClient(configuration: .init(hosts: [etcd.endpoint], tls: try context(trusting: other.ca, identity: pki)), logger: logger)
        await #expect(throws: EtcdError.self) { try await wrongCA.range(prefix: "tls.rpc/") }
        let anonymous = EtcdClient(configuration: .init(hosts: [etcd.endpoint], tls: try context(trusting: pki.ca, identity: nil)), logger: logger)
        await #expect(throws: EtcdError.self) { try await anonymous.range(prefix: "tls.rpc/") }
        let plain = EtcdClient(configuration: .init(hosts: [etcd.endpoint]), logger: logger)
        await #expect(throws: EtcdError.self) { try await plain.range(prefix: "tls.rpc/") }
        for c in [good, wrongCA, anonymous, plain] { await c.close() }
    }
}
