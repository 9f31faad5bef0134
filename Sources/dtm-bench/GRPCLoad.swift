import DTMCore
import DTMGRPC
import HTTP2
import Logging

/// gRPC saga submit (`/dtmgimp.Dtm/Submit`) with two gRPC branches on the bench's branch service.
/// The request is encoded once without its gid; each submit prepends field 1 (gid) to those bytes —
/// protobuf accepts fields in any order — so the generator spends no time encoding.
struct GRPCScenario: Scenario {
    let name: String
    let pool: GRPCConnectionPool
    /// Coordinators' gRPC addresses: submit `seq` goes to `targets[seq % count]`.
    let targets: [String]
    let gidPrefix: [UInt8]
    let template: [UInt8]

    /// `busi`: where the branch URLs point: `127.0.0.1:<port>`, or `etcd://<etcd>/bench.rpc` when the branch service
    /// is registered in etcd.
    init(targets: [String], busi: String, gidPrefix: String, waitResult: Bool) throws {
        var r = TransactionRequest(gid: "", transType: "saga")
        r.steps = [
            TransStep(action: "\(busi)/busi.Busi/TransOut", compensate: "\(busi)/busi.Busi/TransOutRevert"),
            TransStep(action: "\(busi)/busi.Busi/TransIn", compensate: "\(busi)/busi.Busi/TransInRevert"),
        ]
        r.payloads = [[0x08, 0x1E], [0x08, 0x1E]]
        r.options.waitResult = waitResult
        var template = try ProtoCodec.encodeRequest(r)
        if template.starts(with: [0x0A, 0x00]) { template.removeFirst(2) }
        self.name = (waitResult ? "grpc wait_result" : "grpc") + (DiscoveryTarget.isDiscoveryURL(busi) ? " etcd" : "")
        self.pool = GRPCConnectionPool(logger: Logger(label: "dtm-bench"))
        self.targets = targets
        self.gidPrefix = Array(gidPrefix.utf8)
        self.template = template
    }

    func makeWorker() -> any SubmitWorker { GRPCWorker(self) }

    func shutdown() async { await pool.shutdown() }

    func message(seq: Int) -> [UInt8] {
        var gid = gidPrefix
        gid += String(seq).utf8
        var m: [UInt8] = []
        m.reserveCapacity(gid.count + template.count + 3)
        m.append(0x0A)
        var n = gid.count
        while n >= 0x80 {
            m.append(UInt8(n & 0x7F) | 0x80)
            n >>= 7
        }
        m.append(UInt8(n))
        m += gid
        m += template
        return m
    }
}

final class GRPCWorker: SubmitWorker {
    private let scenario: GRPCScenario

    init(_ scenario: GRPCScenario) { self.scenario = scenario }

    func submit(seq: Int) async -> Bool {
        let result = await scenario.pool.unary(
            authority: scenario.targets[seq % scenario.targets.count], path: "/dtmgimp.Dtm/Submit", message: scenario.message(seq: seq), timeout: .seconds(30))
        return result.isOK
    }

    func finish() async {}
}
