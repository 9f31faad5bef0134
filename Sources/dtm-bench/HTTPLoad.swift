import NIOCore

/// HTTP saga submit (`POST /api/dtmsvr/submit`, JSON) with two HTTP branches on the bench's branch service.
/// The body is two constant byte strings around the gid; each worker owns one keep-alive connection.
struct HTTPScenario: Scenario {
    let name: String
    /// Coordinators' HTTP addresses: submit `seq` goes to `targets[seq % count]`.
    let targets: [String]
    let gidPrefix: String
    let head: [UInt8]
    let tail: [UInt8]

    init(targets: [String], branchPort: Int, gidPrefix: String, waitResult: Bool) {
        let busi = "http://127.0.0.1:\(branchPort)/api/busi"
        self.name = waitResult ? "http wait_result" : "http"
        self.targets = targets
        self.gidPrefix = gidPrefix
        self.head = Array(#"{"gid":""#.utf8)
        self.tail = Array(
            (#"","trans_type":"saga","steps":[{"action":"\#(busi)/TransOut","compensate":"\#(busi)/TransOutRevert"},"#
                + #"{"action":"\#(busi)/TransIn","compensate":"\#(busi)/TransInRevert"}],"#
                + #""payloads":["{\"amount\":30}","{\"amount\":30}"],"wait_result":\#(waitResult)}"#).utf8)
    }

    func makeWorker() -> any SubmitWorker { HTTPWorker(self) }

    func shutdown() async {}
}

final class HTTPWorker: SubmitWorker {
    private let scenario: HTTPScenario
    /// One keep-alive connection per coordinator.
    private var connections: [HTTPClientConnection?]

    init(_ scenario: HTTPScenario) {
        self.scenario = scenario
        connections = Array(repeating: nil, count: scenario.targets.count)
    }

    func submit(seq: Int) async -> Bool {
        let i = seq % scenario.targets.count
        // A connection the server closed while this worker was idle (HttpIdleTimeout) is replaced, not used.
        if let c = connections[i], !c.channel.isActive { connections[i] = nil }
        if connections[i] == nil { connections[i] = try? await HTTPClientConnection.connect(scenario.targets[i]) }
        guard let connection = connections[i] else { return false }
        var body = connection.channel.allocator.buffer(capacity: scenario.head.count + scenario.tail.count + 32)
        body.writeBytes(scenario.head)
        body.writeString(scenario.gidPrefix)
        body.writeString(String(seq))
        body.writeBytes(scenario.tail)
        do {
            return try await connection.request(.POST, "/api/dtmsvr/submit", body: body).status == 200
        } catch {
            await connection.close()
            connections[i] = nil
            return false
        }
    }

    func finish() async {
        for case let c? in connections { await c.close() }
        connections = connections.map { _ in nil }
    }
}
