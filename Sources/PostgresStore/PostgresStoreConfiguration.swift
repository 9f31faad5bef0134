package import NIOCore
import NIOSSL
import PostgresNIO

/// Where the PostgreSQL store connects and how many connections it keeps (DTM's `Store.*` keys, spec §12).
package struct PostgresStoreConfiguration: Sendable {
    package var host = "127.0.0.1"
    package var port = 5432
    package var user = ""
    package var password = ""
    package var database = "dtm"
    /// `Store.Schema`: the search_path, created if missing.
    package var schema = "public"
    package var tables = PostgresTables.dtm
    /// `Store.MaxOpenConns`: the store never opens more connections than this (at least 2: one writes, one reads).
    package var maxOpenConnections = 500
    /// Writer connections, each committing batches; the rest of `connections` serve reads.
    package var writerConnections = 2
    package var readerConnections = 1
    /// `Store.ConnMaxLifeTime` (minutes in DTM's configuration): a connection older than this is replaced; nil keeps it.
    package var connectionLifetime: Duration? = .seconds(300)
    /// A statement that takes longer closes its connection (the database stopped answering).
    package var statementTimeout: TimeAmount = .seconds(30)
    package var connectTimeout: TimeAmount = .seconds(5)
    /// How long start-up waits for the database to accept connections (DTM waits for its store too).
    package var startupWait: Duration = .seconds(60)
    /// `Store.SSLMode`, set with `setTLS` (default `disable`, as DTM's DSN `sslmode=disable`).
    package private(set) var sslMode = SSLMode.disable
    private var tls = PostgresConnection.Configuration.TLS.disable

    package init() {}

    /// libpq's `sslmode` values, as far as postgres-nio can honour them: it offers TLS first or not at all, so
    /// `allow` (libpq: plain first, TLS if the server insists) is taken as `prefer`, which connects in the same cases.
    package enum SSLMode: String, Sendable, CaseIterable {
        /// Plain only.
        case disable
        /// As `prefer`.
        case allow
        /// TLS when the server offers it, plain otherwise; the certificate is not checked (libpq's `prefer` neither).
        case prefer
        /// TLS or no connection; the certificate is checked only against `Store.SSLRootCert` when it is set (as
        /// libpq does when a root certificate file exists), otherwise not at all.
        case require
        /// TLS, the server's certificate chained to `Store.SSLRootCert` (or the system's roots); its name not checked.
        case verifyCA = "verify-ca"
        /// As `verify-ca`, and the certificate names the host (a DNS name, or an IP address in its IP SANs).
        case verifyFull = "verify-full"
    }

    /// A TLS setting that cannot be used, naming the configuration key.
    package struct TLSError: Error, CustomStringConvertible {
        package let description: String
    }

    /// Sets `Store.SSLMode` and `Store.SSLRootCert` (a PEM CA bundle; empty: the system's roots), reading the file now
    /// so that a bad one stops start-up. The root certificate is not used by `disable`, `allow` and `prefer`.
    package mutating func setTLS(mode: SSLMode, rootCertFile: String) throws(TLSError) {
        sslMode = mode
        if mode == .disable {
            tls = .disable
            return
        }
        var roots: [NIOSSLCertificate]?
        if !rootCertFile.isEmpty && mode != .allow && mode != .prefer {
            do {
                roots = try NIOSSLCertificate.fromPEMFile(rootCertFile)
            } catch {
                throw TLSError(description: "Store.SSLRootCert: cannot read PEM certificates from \(rootCertFile): \(error)")
            }
        }
        var c = TLSConfiguration.makeClientConfiguration()
        c.minimumTLSVersion = .tlsv12
        switch mode {
        case .disable, .allow, .prefer:
            c.certificateVerification = .none
        case .require:
            c.certificateVerification = roots == nil ? .none : .noHostnameVerification
        case .verifyCA:
            c.certificateVerification = .noHostnameVerification
        case .verifyFull:
            c.certificateVerification = .fullVerification
        }
        if let roots { c.trustRoots = .certificates(roots) }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: c)
        } catch {
            throw TLSError(description: "Store.SSLMode \(mode.rawValue): \(error)")
        }
        tls = mode == .allow || mode == .prefer ? .prefer(context) : .require(context)
    }

    /// Writers and readers within `maxOpenConnections`.
    var connectionCounts: (writers: Int, readers: Int) {
        let total = max(2, min(maxOpenConnections, writerConnections + readerConnections))
        let writers = max(1, min(writerConnections, total - 1))
        return (writers, max(1, total - writers))
    }

    var connection: PostgresConnection.Configuration {
        var c = PostgresConnection.Configuration(
            host: host, port: port, username: user, password: password.isEmpty ? nil : password, database: database, tls: tls)
        c.options.connectTimeout = connectTimeout
        c.options.additionalStartupParameters = [("search_path", schema), ("application_name", "swift-dtm")]
        return c
    }
}
