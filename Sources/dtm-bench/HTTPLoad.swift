import NIOCore

/// HTTP saga submit (`POST /api/dtmsvr/submit`, JSON) with two HTTP branches on the bench's branch service.
/// The body is two constant byte strings around the gid; each worker owns one keep-alive connection.
struct HTTPScenario: Scenario {
    let name: String
    let target: String
    let gidPrefix: String
    let head: [UInt8]
    let tail: [UInt8]

    init(target: String, branchPort: Int, gidPrefix: String, waitResult: Bool) {
        let busi = "http://127.0.0.1:\(branchPort)/api/busi"
        self.name = waitResult ? "http wait_result" : "http"
        self.target = target
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
    private var connection: HTTPClientConnection?

    init(_ scenario: HTTPScenario) { self.scenario = scenario }

    func submit(seq: Int) async -> Bool {
        // A connection the server closed while this worker was idle (HttpIdleTimeout) is replaced, not used.
        if let c = connection, !c.channel.isActive { connection = nil }
        if connection == nil { connection = try? await HTTPClientConnection.connect(scenario.target) }
        guard let connection else { return false }
        var body = connection.channel.allocator.buffer(capacity: scenario.head.count + scenario.tail.count + 32)
        body.writeBytes(scenario.head)
        body.writeString(scenario.gidPrefix)
        body.writeString(String(seq))
        body.writeBytes(scenario.tail)
        do {
            return try await connection.request(.POST, "/api/dtmsvr/submit", body: body).status == 200
        } catch {
            await connection.close()
            self.connection = nil
            return false
        }
    }

    func finish() async {
        await connection?.close()
        connection = nil
    }
}
