import DTMCore
import Testing

@Suite("go-zero discovery targets and branch URLs")
struct DiscoveryTargetTests {
    @Test("a branch URL is split after the second path segment, as DTM splits it")
    func branchURL() throws {
        let (target, method) = try DiscoveryTarget.parseBranchURL("etcd://127.0.0.1:2379/user.rpc/user.UserService/UserCreate")
        #expect(target.hosts == ["127.0.0.1:2379"])
        #expect(target.key == "user.rpc")
        #expect(method == "/user.UserService/UserCreate")
        #expect(target.server == "etcd://127.0.0.1:2379/user.rpc")
        let (d, m) = try DiscoveryTarget.parseBranchURL("DISCOV://127.0.0.1:2379,[::1]:2380,Localhost/tag.rpc/tag.TagSign/SignUserChooseTag")
        #expect(d.hosts == ["127.0.0.1:2379", "[::1]:2380", "localhost:2379"])
        #expect(d.key == "tag.rpc")
        #expect(m == "/tag.TagSign/SignUserChooseTag")
    }

    @Test("the empty-authority form takes the hosts from the path and the key from the query")
    func emptyAuthority() throws {
        let t = try DiscoveryTarget.parse("etcd:///127.0.0.1:2379,127.0.0.1:2380?key=dtmservice")
        #expect(t.hosts == ["127.0.0.1:2379", "127.0.0.1:2380"])
        #expect(t.key == "dtmservice")
        let (b, method) = try DiscoveryTarget.parseBranchURL("etcd:///127.0.0.1:2379/user.UserService/UserCreate?key=user.rpc")
        #expect(b.key == "user.rpc")
        #expect(method == "/user.UserService/UserCreate")
    }

    @Test("credentials come from the query, percent-decoded; unknown parameters are refused")
    func credentials() throws {
        let t = try DiscoveryTarget.parse("etcd://127.0.0.1:2379/dtmservice?user=root&password=p%40ss%2Fw")
        #expect(t.user == "root")
        #expect(t.password == "p@ss/w")
        #expect(t.server == "etcd://127.0.0.1:2379/dtmservice")  // no credentials in names and logs
        #expect(throws: DTMError.self) { try DiscoveryTarget.parse("etcd://127.0.0.1:2379/dtmservice?usr=root") }
        #expect(throws: DTMError.self) { try DiscoveryTarget.parse("etcd://127.0.0.1:2379/dtmservice?password=%zz") }
    }

    @Test("hostile and malformed targets are refused with a message, never trap")
    func refused() {
        let bad = [
            "etcd://", "etcd:///", "etcd://127.0.0.1:2379", "etcd://127.0.0.1:2379/", "etcd://127.0.0.1:99999/k",
            "etcd://user@127.0.0.1:2379/k", "etcd://127.0.0.1:2379,,127.0.0.1:2380/k", "etcd://127.0.0.1:2379/k#frag",
            "etcd://" + Array(repeating: "h", count: 17).joined(separator: ",") + "/k",
            "etcd://127.0.0.1:2379/" + String(repeating: "k", count: 300),
            "etcd://127.0.0.1:2379/a b", "etcd://127.0.0.1%2f:2379/k", "http://127.0.0.1:2379/k",
            "etcd://127.0.0.1:2379/k?key=", "etcd://[::1/k",
        ]
        for url in bad {
            #expect(throws: DTMError.self, "\(url)") { try DiscoveryTarget.parse(url) }
        }
        // A branch URL needs a method after the key.
        for url in ["etcd://127.0.0.1:2379/user.rpc", "etcd://127.0.0.1:2379/user.rpc/", "etcd://127.0.0.1:2379/user.rpc/x/"] {
            #expect(throws: DTMError.self, "\(url)") { try DiscoveryTarget.parseBranchURL(url) }
        }
    }

    @Test("the allow-list checks every etcd host of a discovery URL, and resolved addresses one by one")
    func allowList() throws {
        let list = try #require(try BranchHostAllowList(parsing: "127.0.0.1:2379, 127.0.0.1:50051"))
        try list.check("etcd://127.0.0.1:2379/user.rpc/user.UserService/UserCreate", field: "action")
        #expect(throws: DTMError.self) { try list.check("etcd://127.0.0.1:2379,127.0.0.1:2380/user.rpc/u.U/C", field: "action") }
        #expect(throws: DTMError.self) { try list.check("etcd://127.0.0.2:2379/user.rpc/u.U/C", field: "action") }
        #expect(throws: DTMError.self) { try list.check("discov://127.0.0.1:2379/user.rpc", field: "action") }
        #expect(list.allows(authority: "127.0.0.1:50051"))
        #expect(!list.allows(authority: "127.0.0.1:50052"))
        #expect(!list.allows(authority: "not an address"))
    }
}
