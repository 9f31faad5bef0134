import DTMCore
@testable import DTMGRPC
import HTTP2
import Synchronization
import Testing

/// A call's answer: `code` with `message`; `unreached`: it provably never reached the server.
func reply(_ code: GRPCStatusCode, _ message: String = "", unreached: Bool = false) -> GRPCCallResult {
    GRPCCallResult(status: GRPCStatus(code, message), isTransparentlyRetryable: unreached)
}

/// Records the calls and answers with a fixed outcome.
final class RecordingTransport: GRPCUnaryTransport {
    struct Call: Sendable {
        var authority: String
        var path: String
        var metadata: [String]
        var message: [UInt8]
        var timeout: Double
        var tls: Bool
    }
    let outcome: GRPCCallResult
    let calls = Mutex<[Call]>([])
    init(_ outcome: GRPCCallResult) { self.outcome = outcome }
    func unary(authority: String, path: String, metadata: [(String, String)], message: [UInt8], timeout: Double, tls: Bool) async -> GRPCCallResult {
        calls.withLock {
            $0.append(Call(authority: authority, path: path, metadata: metadata.map { "\($0.0)=\($0.1)" }, message: message, timeout: timeout, tls: tls))
        }
        return outcome
    }
}

@Suite("gRPC branch caller")
struct GRPCBranchCallerTests {
    let call = BranchCall(
        url: "127.0.0.1:58081/user.UserService/UserCreate", gid: "g1", transType: .saga, transProtocol: "grpc", branchID: "02",
        op: "action", payload: [1, 2, 3], headers: ["Test_Header": "yes"], timeout: 3)

    @Test("splits at the first '/', sends DTM's metadata, the payload untouched and the timeout")
    func request() async {
        let t = RecordingTransport(reply(.ok))
        #expect(await GRPCBranchCaller(transport: t).call(call) == .success)
        let c = t.calls.withLock { $0[0] }
        #expect(c.authority == "127.0.0.1:58081")
        #expect(c.path == "/user.UserService/UserCreate")
        #expect(c.metadata == ["dtm-gid=g1", "dtm-trans_type=saga", "dtm-branch_id=02", "dtm-op=action", "dtm-dtm=", "test_header=yes"])
        #expect(c.message == [1, 2, 3])
        #expect(c.timeout == 3)
        #expect(!c.tls)
    }

    @Test("grpcs:// is HTTP/2 over TLS to the same authority; grpc:// is the same as no scheme")
    func schemes() async {
        let t = RecordingTransport(reply(.ok))
        var c = call
        c.url = "grpcs://Busi.Example:443/busi.Busi/TransIn"
        #expect(await GRPCBranchCaller(transport: t).call(c) == .success)
        c.url = "grpc://127.0.0.1:1/busi.Busi/TransIn"
        #expect(await GRPCBranchCaller(transport: t).call(c) == .success)
        let calls = t.calls.withLock { $0 }
        #expect(calls.map(\.authority) == ["busi.example:443", "127.0.0.1:1"])
        #expect(calls.map(\.tls) == [true, false])
        #expect(calls.map(\.path) == ["/busi.Busi/TransIn", "/busi.Busi/TransIn"])
    }

    @Test("status mapping: ABORTED is FAILURE (legacy ONGOING message), FAILED_PRECONDITION is ONGOING, the rest retries")
    func mapping() {
        #expect(GRPCBranchCaller.classify(reply(.aborted, "reason:no")) == .failure("reason:no"))
        #expect(GRPCBranchCaller.classify(reply(.aborted, "ONGOING")) == .ongoing("ONGOING"))
        #expect(GRPCBranchCaller.classify(reply(.failedPrecondition, "x")) == .ongoing("x"))
        #expect(GRPCBranchCaller.classify(reply(.unavailable, "unavailable")) == .error("grpc status 14: unavailable"))
        #expect(GRPCBranchCaller.classify(reply(.unavailable, "refused", unreached: true)) == .error("grpc status 14: refused"))
    }

    @Test("bad urls are errors that name the problem, without a call")
    func badURLs() async {
        let t = RecordingTransport(reply(.ok))
        var c = call
        c.url = "etcd://127.0.0.1:2379/trans.rpc/trans.Trans/TransIn"
        guard case .error(let m) = await GRPCBranchCaller(transport: t).call(c) else { Issue.record("not an error"); return }
        #expect(m.contains("service discovery"))
        c.url = "127.0.0.1:1"
        #expect(await GRPCBranchCaller(transport: t).call(c) == .error("bad url: '127.0.0.1:1'. no '/' found"))
        #expect(t.calls.withLock { $0.isEmpty })
    }
}

/// A resolver with fixed addresses that records which ones were reported as failed.
final class FixedResolver: GRPCServiceResolver {
    let answer: Result<[String], DTMError>
    let failed = Mutex<[String]>([])
    init(_ answer: Result<[String], DTMError>) { self.answer = answer }
    func addresses(for target: DiscoveryTarget) async -> Result<[String], DTMError> { answer }
    func markFailed(_ address: String, for target: DiscoveryTarget) { failed.withLock { $0.append(address) } }
}

/// Answers a transport error for the listed authorities and `status` for the others.
final class PartlyDownTransport: GRPCUnaryTransport {
    let down: Set<String>
    let calls = Mutex<[String]>([])
    init(down: Set<String>) { self.down = down }
    func unary(authority: String, path: String, metadata: [(String, String)], message: [UInt8], timeout: Double, tls: Bool) async -> GRPCCallResult {
        calls.withLock { $0.append("\(authority)\(path)") }
        return down.contains(authority) ? reply(.unavailable, "connection refused", unreached: true) : reply(.ok)
    }
}

@Suite("gRPC branch caller with service discovery")
struct GRPCDiscoveredCallTests {
    let call = BranchCall(
        url: "etcd://127.0.0.1:2379/user.rpc/user.UserService/UserCreate", gid: "g1", transType: .saga, transProtocol: "grpc",
        branchID: "01", op: "action", payload: [1], headers: [:], timeout: 3)

    @Test("the call goes to the first resolved address with the method of the URL")
    func firstAddress() async {
        let t = PartlyDownTransport(down: [])
        let r = FixedResolver(.success(["127.0.0.1:7001", "127.0.0.1:7002"]))
        #expect(await GRPCBranchCaller(transport: t, resolver: r).call(call) == .success)
        #expect(t.calls.withLock { $0 } == ["127.0.0.1:7001/user.UserService/UserCreate"])
    }

    @Test("an address that cannot be reached is reported and the next one is tried")
    func failover() async {
        let t = PartlyDownTransport(down: ["127.0.0.1:7001"])
        let r = FixedResolver(.success(["127.0.0.1:7001", "127.0.0.1:7002"]))
        #expect(await GRPCBranchCaller(transport: t, resolver: r).call(call) == .success)
        #expect(t.calls.withLock { $0 }.count == 2)
        #expect(r.failed.withLock { $0 } == ["127.0.0.1:7001"])
    }

    @Test("no address known is a temporary error naming the key, never a failure")
    func noAddress() async {
        let t = PartlyDownTransport(down: [])
        let r = FixedResolver(.failure(.other("no address registered under 'user.rpc/' in etcd 127.0.0.1:2379")))
        guard case .error(let m) = await GRPCBranchCaller(transport: t, resolver: r).call(call) else { Issue.record("not an error"); return }
        #expect(m.contains("user.rpc/"))
        #expect(t.calls.withLock { $0.isEmpty })
    }

    @Test("resolved addresses outside the allow-list are never called")
    func allowList() async throws {
        let t = PartlyDownTransport(down: [])
        let list = try BranchHostAllowList(parsing: "127.0.0.1:2379,127.0.0.1:7002")
        let r = FixedResolver(.success(["127.0.0.1:7001", "127.0.0.1:7002"]))
        #expect(await GRPCBranchCaller(transport: t, resolver: r, allowList: list).call(call) == .success)
        #expect(t.calls.withLock { $0 } == ["127.0.0.1:7002/user.UserService/UserCreate"])
        let only = FixedResolver(.success(["127.0.0.1:7001"]))
        guard case .error(let m) = await GRPCBranchCaller(transport: t, resolver: only, allowList: list).call(call) else {
            Issue.record("not an error"); return
        }
        #expect(m.contains("BranchHostAllowList"))
        #expect(t.calls.withLock { $0.count } == 1)
    }
}

@Suite("addresses read from etcd")
struct DialableAddressTests {
    @Test("only exact host:port values are dialled, normalised; anything else written in etcd is skipped")
    func dialable() {
        #expect(GRPCBranchCaller.dialable("127.0.0.1:7001") == "127.0.0.1:7001")
        #expect(GRPCBranchCaller.dialable("LocalHost.:7001") == "localhost:7001")
        #expect(GRPCBranchCaller.dialable("[0:0::1]:7001") == "[::1]:7001")
        for hostile in [
            "", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "evil:1/p.S/M", "a@b:1", "h:1,h:2", " 127.0.0.1:1",
            String(repeating: "a", count: 5000) + ":1", "127.0.0.1:1\n",
        ] {
            #expect(GRPCBranchCaller.dialable(hostile) == nil, "\(hostile.prefix(40))")
        }
    }
}
