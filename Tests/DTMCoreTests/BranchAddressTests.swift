@testable import DTMCore
import DTMTestSupport
import Testing

@Suite("branch addresses and the host allow-list")
struct BranchAddressTests {
    private func address(_ url: String) throws -> BranchAddress { try BranchAddress.parse(url) }

    @Test("scheme, host and port as dialled: http, https, bare gRPC targets, IPv6, upper case, trailing dots")
    func parsing() throws {
        let a = try address("http://Busi.Example.:8081/api?x=1")
        #expect(a.scheme == "http" && a.host == "busi.example" && a.port == 8081 && a.rest == "/api?x=1")
        #expect(try address("https://h/x").effectivePort == 443)
        #expect(try address("HTTP://h").effectivePort == 80)
        let g = try address("127.0.0.1:58081/busi.Busi/TransIn")
        #expect(g.scheme == "" && g.authority == "127.0.0.1:58081" && g.rest == "/busi.Busi/TransIn")
        #expect(try address("http://[::1]:8081/x").authority == "[::1]:8081")
        #expect(try address("http://[0:0:0:0:0:0:0:1]/x").host == "::1")
        #expect(try address("http://[2001:DB8:0:0:1:0:0:1]/").host == "2001:db8::1:0:0:1")
        #expect(try address("[::ffff:10.0.0.1]:9/p.S/M").host == "::ffff:a00:1")
    }

    @Test("a '://' after the start is path, not a scheme: the gRPC target is what precedes the first '/'")
    func schemeOnlyAtStart() throws {
        let a = try address("evil:50051/p.S/M://allowed.example")
        #expect(a.scheme == "" && a.host == "evil" && a.port == 50051)
        let b = try address("evil.example:80/x?u=http://allowed.example/")
        #expect(b.host == "evil.example")
    }

    @Test("ambiguous authorities are refused: user info, escapes, backslashes, zone ids, bad ports")
    func refused() {
        for url in [
            "http://allowed.example@evil.example/", "http://allowed.example:80@evil/", "http://%61llowed.example/",
            "http://allowed.example\\@evil/", "http://[fe80::1%25eth0]:80/", "http://h:0/", "http://h:65536/",
            "http://h:8o/", "http:///x", "http://./", "http://[::1/", "http://[1:2:3]/", "http://[::1]x/", ":50051/p.S/M",
            "http://a b/", "http://h:/x",
        ] {
            #expect(throws: DTMError.self, "\(url)") { try BranchAddress.parse(url) }
        }
    }

    @Test("the allow-list: hosts or host:port, normalised; each bypass is refused")
    func allowList() throws {
        let list = try #require(try BranchHostAllowList(parsing: " Allowed.Example. , 10.0.0.5:8080, [0::1] "))
        for url in [
            "http://allowed.example/x", "HTTP://ALLOWED.EXAMPLE:9/x", "allowed.example:50051/p.S/M", "http://allowed.example./",
            "http://10.0.0.5:8080/x", "http://[::1]:1/", "[0:0::1]:5/p.S/M",
        ] {
            #expect(throws: Never.self, "\(url)") { try list.check(url, field: "f") }
        }
        for url in [
            "evil:50051/p.S/M://allowed.example", "http://evil.example/?next=http://allowed.example",
            "http://allowed.example@evil.example/", "http://allowed.example.evil.example/", "http://10.0.0.5/x",
            "http://10.0.0.5:80/x", "http://[::2]/", "http://evil.example#@allowed.example/",
        ] {
            #expect(throws: DTMError.self, "\(url)") { try list.check(url, field: "f") }
        }
        #expect(throws: DTMError.invalidArgument("f: host 'evil:50051' is not in BranchHostAllowList")) {
            try list.check("evil:50051/p.S/M://allowed.example", field: "f")
        }
        #expect(throws: DTMError.self) { try BranchHostAllowList(parsing: "a@b") }
        #expect(try BranchHostAllowList(parsing: " , ") == nil)
    }

    @Test("the allow-list applies again at call time: a stored URL it does not allow is an error, never called")
    func callTime() async throws {
        let list = try BranchHostAllowList(parsing: "127.0.0.1")
        let http = ScriptedCaller()
        let router = BranchCallRouter(http: http, grpc: http, allowList: list)
        let call = BranchCall(
            url: "evil:50051/p.S/M://127.0.0.1", gid: "g", transType: .saga, transProtocol: "grpc", branchID: "01", op: "action",
            payload: [], headers: [:], timeout: 3)
        guard case .error(let m) = await router.call(call) else { Issue.record("not refused"); return }
        #expect(m.contains("not in BranchHostAllowList"))
        #expect(http.calls.isEmpty)
        var allowed = call
        allowed.url = "127.0.0.1:50051/p.S/M"
        #expect(await router.call(allowed) == .success)
        #expect(http.calls.count == 1)
    }
}
