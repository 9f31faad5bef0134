import DTMCore
@testable import DTMGRPC
import Synchronization
import Testing

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
    let outcome: GRPCCallOutcome
    let calls = Mutex<[Call]>([])
    init(_ outcome: GRPCCallOutcome) { self.outcome = outcome }
    func unary(authority: String, path: String, metadata: [(String, String)], message: [UInt8], timeout: Double, tls: Bool) async -> GRPCCallOutcome {
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
        let t = RecordingTransport(.status(code: 0, message: ""))
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
        let t = RecordingTransport(.status(code: 0, message: ""))
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
        #expect(GRPCBranchCaller.classify(.status(code: 10, message: "reason:no")) == .failure("reason:no"))
        #expect(GRPCBranchCaller.classify(.status(code: 10, message: "ONGOING")) == .ongoing("ONGOING"))
        #expect(GRPCBranchCaller.classify(.status(code: 9, message: "x")) == .ongoing("x"))
        #expect(GRPCBranchCaller.classify(.status(code: 14, message: "unavailable")) == .error("grpc status 14: unavailable"))
        #expect(GRPCBranchCaller.classify(.transportError("refused")) == .error("refused"))
    }

    @Test("bad urls are errors that name the problem, without a call")
    func badURLs() async {
        let t = RecordingTransport(.status(code: 0, message: ""))
        var c = call
        c.url = "etcd://127.0.0.1:2379/trans.rpc/trans.Trans/TransIn"
        guard case .error(let m) = await GRPCBranchCaller(transport: t).call(c) else { Issue.record("not an error"); return }
        #expect(m.contains("service discovery"))
        c.url = "127.0.0.1:1"
        #expect(await GRPCBranchCaller(transport: t).call(c) == .error("bad url: '127.0.0.1:1'. no '/' found"))
        #expect(t.calls.withLock { $0.isEmpty })
    }
}
