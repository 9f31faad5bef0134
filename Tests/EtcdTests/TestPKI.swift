import DTMTestSupport
import Foundation

/// A throwaway certificate authority made with openssl in a temporary directory, removed when the value goes: a
/// server certificate for 127.0.0.1 and localhost, and a client certificate.
final class TestPKI: @unchecked Sendable {
    private let temporary: TemporaryDirectory
    var directory: URL { temporary.url }
    var ca: String { path("ca.pem") }
    var serverCert: String { path("server.pem") }
    var serverKey: String { path("server.key") }
    var clientCert: String { path("client.pem") }
    var clientKey: String { path("client.key") }

    init(name: String) throws {
        temporary = try TemporaryDirectory(prefix: "swift-dtm-pki")  // removed with this value, or if init throws
        try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=\(name) CA", "-keyout", "ca.key", "-out", "ca.pem"])
        // etcd's gateway dials its own client port with the server certificate: it needs both usages.
        try issue("server", subject: "/CN=localhost", extensions: "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
        try issue("client", subject: "/CN=root", extensions: "extendedKeyUsage=clientAuth\n")
    }

    private func path(_ file: String) -> String { directory.appendingPathComponent(file).path }

    private func issue(_ name: String, subject: String, extensions: String) throws {
        try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", "\(name).key", "-out", "\(name).csr"])
        try Data(extensions.utf8).write(to: directory.appendingPathComponent("\(name).ext"))
        try openssl([
            "x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "\(name).ext",
            "-out", "\(name).pem",
        ])
    }

    private func openssl(_ arguments: [String]) throws {
        let (status, output) = try TestProcess.run("/usr/bin/openssl", arguments, directory: directory)
        guard status == 0 else { throw EtcdTestServer.Failure("openssl \(arguments.first ?? ""): \(output)") }
    }
}
