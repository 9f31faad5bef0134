import DTMTestSupport
import Foundation
import Glibc

/// A private etcd (Debian's `etcd-server`, /usr/bin/etcd) on free loopback ports with a temporary data directory,
/// stopped by PID. `restart` keeps the data directory. With `tls`, the client port speaks only TLS with that
/// PKI's server certificate and requires a client certificate signed by its CA.
final class EtcdTestServer: @unchecked Sendable {
    let clientPort: Int
    let peerPort: Int
    private let temporary: TemporaryDirectory
    var directory: URL { temporary.url }
    let tls: TestPKI?
    private var process: Process?

    static let binary = "/usr/bin/etcd"

    init(tls: TestPKI? = nil) throws {
        self.tls = tls
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw Failure("\(Self.binary) not found: install Debian's etcd-server (scripts/setup.sh does)")
        }
        clientPort = try LoopbackPort.free()
        peerPort = try LoopbackPort.free()
        temporary = try TemporaryDirectory(prefix: "swift-dtm-etcd")
        try start()
    }

    var endpoint: String { "127.0.0.1:\(clientPort)" }

    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        let peer = "http://127.0.0.1:\(peerPort)"
        let client = "\(tls == nil ? "http" : "https")://127.0.0.1:\(clientPort)"
        p.arguments = [
            "--name", "default", "--data-dir", directory.appendingPathComponent("data").path,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "default=\(peer)",
        ]
        if let tls {
            p.arguments? += ["--cert-file", tls.serverCert, "--key-file", tls.serverKey, "--trusted-ca-file", tls.ca, "--client-cert-auth"]
        }
        let log = FileManager.default.createFile(atPath: directory.appendingPathComponent("etcd.log").path, contents: nil)
        precondition(log, "cannot create the etcd log file")  // the directory was just created
        p.standardOutput = try FileHandle(forWritingTo: directory.appendingPathComponent("etcd.log"))
        p.standardError = p.standardOutput
        try p.run()
        process = p
        try waitUntilServing()
    }

    func stop() {
        guard let p = process else { return }
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        process = nil
    }

    func restart() throws {
        stop()
        try start()
    }

    func etcdctl(_ arguments: [String]) throws -> String {
        let certificates = tls.map { ["--cacert", $0.ca, "--cert", $0.clientCert, "--key", $0.clientKey] } ?? []
        let (status, text) = try TestProcess.run(
            "/usr/bin/etcdctl", ["--endpoints", endpoint] + certificates + arguments, environment: ["ETCDCTL_API": "3"])
        guard status == 0 else { throw Failure("etcdctl \(arguments.joined(separator: " ")): \(text)") }
        return text
    }

    deinit {
        stop()
    }

    private func waitUntilServing() throws {
        for _ in 0..<200 {
            if (try? etcdctl(["endpoint", "health"])) != nil { return }
            usleep(50_000)
        }
        throw Failure("etcd did not become healthy on \(endpoint)")
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
