@testable import PostgresStore
import Testing

/// `Store.SSLMode` and `Store.SSLRootCert`: libpq's names mapped onto what postgres-nio can do, and errors that
/// name the key. The connections themselves are tested end to end (Tests/Interop/test_postgres_tls.py).
@Suite("PostgreSQL TLS settings")
struct PostgresTLSConfigurationTests {
    @Test("every libpq sslmode name is known; disable is the default")
    func names() {
        #expect(PostgresStoreConfiguration.SSLMode.allCases.map(\.rawValue) == ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"])
        #expect(PostgresStoreConfiguration().sslMode == .disable)
        #expect(!PostgresStoreConfiguration().connection.tls.isAllowed)
    }

    @Test("allow and prefer offer TLS; require, verify-ca and verify-full insist on it; disable never tries")
    func modes() throws {
        for (mode, allowed, enforced) in [
            (PostgresStoreConfiguration.SSLMode.disable, false, false), (.allow, true, false), (.prefer, true, false), (.require, true, true),
            (.verifyCA, true, true), (.verifyFull, true, true),
        ] {
            var c = PostgresStoreConfiguration()
            try c.setTLS(mode: mode, rootCertFile: "")
            #expect(c.sslMode == mode)
            #expect(c.connection.tls.isAllowed == allowed, "\(mode)")
            #expect(c.connection.tls.isEnforced == enforced, "\(mode)")
        }
    }

    @Test("a root certificate that cannot be read stops start-up naming Store.SSLRootCert; modes that do not use it ignore it")
    func rootCertificate() throws {
        for mode in [PostgresStoreConfiguration.SSLMode.require, .verifyCA, .verifyFull] {
            var c = PostgresStoreConfiguration()
            do {
                try c.setTLS(mode: mode, rootCertFile: "/nonexistent/root.crt")
                Issue.record("\(mode): a missing root certificate was accepted")
            } catch {
                #expect(error.description.hasPrefix("Store.SSLRootCert: cannot read PEM certificates from /nonexistent/root.crt"))
            }
        }
        for mode in [PostgresStoreConfiguration.SSLMode.disable, .allow, .prefer] {
            var c = PostgresStoreConfiguration()
            try c.setTLS(mode: mode, rootCertFile: "/nonexistent/root.crt")
        }
    }
}
