@testable import DTMHTTP
import Testing

@Suite("browser-origin rules")
struct BrowserOriginPolicyTests {
    typealias Headers = BrowserOriginPolicy.Headers

    let onAllInterfaces = BrowserOriginPolicy(allowedHosts: [], listenHost: "0.0.0.0")
    let onLoopback = BrowserOriginPolicy(allowedHosts: [], listenHost: "127.0.0.1")
    let listed = BrowserOriginPolicy(allowedHosts: ["dtm.example.com", "*.svc.cluster.local"], listenHost: "0.0.0.0")

    @Test("DTM's clients (no Origin, no Sec-Fetch-*) pass with any host name unless the listener is on loopback or names are listed")
    func nonBrowserClients() {
        let plain = Headers(host: "dtm:36789")
        #expect(onAllInterfaces.refusal(path: "/api/dtmsvr/submit", headers: plain) == nil)
        #expect(onLoopback.refusal(path: "/api/dtmsvr/submit", headers: plain) != nil)
        #expect(listed.refusal(path: "/api/dtmsvr/submit", headers: plain) != nil)
        for host in ["127.0.0.1:36789", "localhost:36789", "[::1]:36789", "10.1.2.3", "api.localhost"] {
            for policy in [onAllInterfaces, onLoopback, listed] {
                #expect(policy.refusal(path: "/api/dtmsvr/submit", headers: Headers(host: host)) == nil, "\(host)")
            }
        }
        #expect(onAllInterfaces.refusal(path: "/api/dtmsvr/submit", headers: Headers()) == nil, "HTTP/1.0 without Host")
    }

    @Test("DNS rebinding: a browser naming a host that is not this server's is refused, on pages too")
    func rebinding() {
        let rebound = Headers(host: "rebind.evil.example:36789", fetchSite: "same-origin")
        for policy in [onAllInterfaces, onLoopback, listed] {
            for path in ["/api/dtmsvr/all", "/api/dtmsvr/query", "/"] {
                let reason = policy.refusal(path: path[...], headers: rebound)
                #expect(reason?.contains("rebind.evil.example") == true && reason?.contains("AllowedHosts") == true, "\(path)")
            }
        }
        // A browser without Sec-Fetch headers but with an Origin is a browser too.
        #expect(onAllInterfaces.refusal(path: "/api/dtmsvr/all", headers: Headers(host: "x.evil", origin: "http://x.evil")) != nil)
        #expect(listed.refusal(path: "/api/dtmsvr/all", headers: Headers(host: "dtm.example.com.", fetchSite: "same-origin")) == nil)
        #expect(listed.refusal(path: "/api/dtmsvr/all", headers: Headers(host: "dtm.ns.svc.cluster.local:36789", fetchSite: "none")) == nil)
        #expect(listed.refusal(path: "/api/dtmsvr/all", headers: Headers(host: "evilsvc.cluster.local", fetchSite: "none")) != nil)
        #expect(BrowserOriginPolicy(allowedHosts: ["*"], listenHost: "127.0.0.1").refusal(path: "/api/x", headers: rebound) == nil)
    }

    @Test("cross-site requests to /api are refused; same-origin and user-initiated ones pass; pages may be linked to")
    func crossSite() {
        let host = "127.0.0.1:36789"
        let cases: [(Headers, Bool)] = [
            (Headers(host: host, origin: "http://evil.example", fetchSite: "cross-site"), false),
            (Headers(host: host, fetchSite: "cross-site"), false),
            (Headers(host: host, fetchSite: "same-site"), false),
            (Headers(host: host, origin: "http://evil.example"), false),
            (Headers(host: host, origin: "null"), false),
            (Headers(host: host, origin: "http://127.0.0.1:36790"), false),
            (Headers(host: host, origin: "http://127.0.0.1:36789@evil.example"), false),
            (Headers(host: host, origin: "http://127.0.0.1:36789", fetchSite: "same-origin"), true),
            (Headers(host: "LOCALHOST:36789", origin: "http://localhost:36789"), true),
            (Headers(host: "dtm.example.com", origin: "https://dtm.example.com"), true),
            (Headers(host: "dtm.example.com:80", origin: "http://dtm.example.com"), true),
            (Headers(host: host, fetchSite: "none"), true),
        ]
        for (headers, passes) in cases {
            #expect((listed.refusal(path: "/api/dtmsvr/forceStop", headers: headers) == nil) == passes, "\(headers)")
        }
        #expect(onAllInterfaces.refusal(path: "/", headers: Headers(host: host, fetchSite: "cross-site")) == nil)
        #expect(onAllInterfaces.refusal(path: "/admin/", headers: Headers(host: host, origin: "http://evil.example")) == nil)
    }

    @Test("host names: ports, brackets, trailing dots and IP literals")
    func hostNames() {
        #expect(BrowserOriginPolicy.hostName(of: "Example.COM.:80") == "example.com")
        #expect(BrowserOriginPolicy.hostName(of: "[::1]:36789") == "[::1]")
        #expect(BrowserOriginPolicy.isIPLiteral("192.168.0.1"))
        #expect(!BrowserOriginPolicy.isIPLiteral("192.168.0.256"))
        #expect(!BrowserOriginPolicy.isIPLiteral("1.2.3"))
        #expect(!BrowserOriginPolicy.isIPLiteral("1.2.3.4.nip.io"))
        #expect(BrowserOriginPolicy.authority(ofOrigin: "https://A.example:443") == "a.example")
        #expect(BrowserOriginPolicy.authority(ofOrigin: "ftp://a.example") == nil)
    }
}
