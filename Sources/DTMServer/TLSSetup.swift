import NIOSSL

/// The TLS contexts of the listeners and of branch calls, built once at start-up from the configured PEM files,
/// so that a bad file stops start-up with a message naming its key.
struct TLSSetup {
    /// HTTPS on the JSON API port (ALPN `http/1.1`).
    var http: NIOSSLContext?
    /// HTTP/2 over TLS on the gRPC port (ALPN `h2`).
    var grpc: NIOSSLContext?
    /// `grpcs://` branch calls (ALPN `h2`), trusting `BranchTLSCAFile` or the system's roots.
    var grpcBranches: NIOSSLContext
    /// `https://` branch calls (AsyncHTTPClient).
    var httpBranches: TLSConfiguration
    /// The etcd cluster of `MicroService.Target` (ALPN `h2`), trusting `MicroService.EtcdCACertFile`, with the client
    /// certificate of `MicroService.EtcdCertFile` / `EtcdCertKeyFile` when set; nil: plain h2c, as go-zero without TLS.
    var etcd: NIOSSLContext?

    init(_ configuration: Configuration) throws {
        if !configuration.tlsCertFile.isEmpty {
            let (chain, key) = try Self.identity(
                certificate: ("TLSCertFile", configuration.tlsCertFile), key: ("TLSKeyFile", configuration.tlsKeyFile))
            func server(_ alpn: [String]) throws -> NIOSSLContext {
                var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
                tls.minimumTLSVersion = .tlsv12
                tls.applicationProtocols = alpn
                do {
                    return try NIOSSLContext(configuration: tls)
                } catch {
                    throw Configuration.Invalid(description: "TLSCertFile / TLSKeyFile: \(error)")
                }
            }
            http = try server(["http/1.1"])
            grpc = try server(["h2"])
        }
        var client = TLSConfiguration.makeClientConfiguration()
        client.minimumTLSVersion = .tlsv12
        if !configuration.branchTLSCAFile.isEmpty {
            client.trustRoots = .certificates(try Self.certificates("BranchTLSCAFile", configuration.branchTLSCAFile))
        }
        httpBranches = client
        var h2 = client
        h2.applicationProtocols = ["h2"]
        do {
            grpcBranches = try NIOSSLContext(configuration: h2)
        } catch {
            throw Configuration.Invalid(description: "BranchTLSCAFile: \(error)")
        }
        let etcd = configuration.etcdTLS
        if !etcd.caCertFile.isEmpty {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            tls.applicationProtocols = ["h2"]
            tls.trustRoots = .certificates(try Self.certificates("MicroService.EtcdCACertFile", etcd.caCertFile))
            if !etcd.certFile.isEmpty {
                let (chain, key) = try Self.identity(
                    certificate: ("MicroService.EtcdCertFile", etcd.certFile), key: ("MicroService.EtcdCertKeyFile", etcd.certKeyFile))
                tls.certificateChain = chain.map { .certificate($0) }
                tls.privateKey = .privateKey(key)
            }
            do {
                self.etcd = try NIOSSLContext(configuration: tls)
            } catch {
                throw Configuration.Invalid(description: "MicroService.EtcdCACertFile / EtcdCertFile / EtcdCertKeyFile: \(error)")
            }
        }
    }

    /// The PEM certificates of `file`; an error names `key`.
    static func certificates(_ key: String, _ file: String) throws -> [NIOSSLCertificate] {
        do {
            return try NIOSSLCertificate.fromPEMFile(file)
        } catch {
            throw Configuration.Invalid(description: "\(key): cannot read PEM certificates from \(file): \(error)")
        }
    }

    /// A PEM certificate chain and its private key; an error names the key of the file that could not be read.
    private static func identity(
        certificate: (key: String, file: String), key: (key: String, file: String)
    ) throws -> (
        [NIOSSLCertificate], NIOSSLPrivateKey
    ) {
        let chain = try certificates(certificate.key, certificate.file)
        do {
            return (chain, try NIOSSLPrivateKey(file: key.file, format: .pem))
        } catch {
            throw Configuration.Invalid(description: "\(key.key): cannot read a PEM private key from \(key.file): \(error)")
        }
    }
}
