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

    init(_ configuration: Configuration) throws {
        if !configuration.tlsCertFile.isEmpty {
            let chain: [NIOSSLCertificate]
            let key: NIOSSLPrivateKey
            do {
                chain = try NIOSSLCertificate.fromPEMFile(configuration.tlsCertFile)
            } catch {
                throw Configuration.Invalid(description: "TLSCertFile: cannot read a PEM certificate chain from \(configuration.tlsCertFile): \(error)")
            }
            do {
                key = try NIOSSLPrivateKey(file: configuration.tlsKeyFile, format: .pem)
            } catch {
                throw Configuration.Invalid(description: "TLSKeyFile: cannot read a PEM private key from \(configuration.tlsKeyFile): \(error)")
            }
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
            do {
                client.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(configuration.branchTLSCAFile))
            } catch {
                throw Configuration.Invalid(description: "BranchTLSCAFile: cannot read PEM certificates from \(configuration.branchTLSCAFile): \(error)")
            }
        }
        httpBranches = client
        var h2 = client
        h2.applicationProtocols = ["h2"]
        do {
            grpcBranches = try NIOSSLContext(configuration: h2)
        } catch {
            throw Configuration.Invalid(description: "BranchTLSCAFile: \(error)")
        }
    }
}
