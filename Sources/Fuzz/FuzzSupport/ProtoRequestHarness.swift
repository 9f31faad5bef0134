import DTMGRPC
package import HTTP2

/// FuzzProtoRequest: protobuf request decoding and model conversion (ProtoCodec over protobuf-c) and
/// DtmService.handle, which decodes, validates and runs the call.
///
/// Input: up to 8 records `method byte, u16 length, message` (`Fixtures.records`). Each input gets a fresh
/// in-memory coordinator (`Fixtures.coordinator`), so a Prepare can be followed by a RegisterBranch and an
/// Abort. Every message that decodes as a DtmRequest or DtmBranchRequest must survive encode → decode
/// unchanged, and a reply that is not OK carries no payload. Then the stored transactions are driven through the
/// cron path over a clock moved up to the end of time (`Fixtures.driveStoredTransactions`).
package enum ProtoRequestHarness {
    package static let methods = DtmService.methods.sorted() + ["/dtmgimp.Dtm/Unknown"]

    /// The status of every call, and every broken invariant (empty when all hold).
    package static func run(_ input: [UInt8]) async -> (codes: [GRPCStatusCode], problems: [String]) {
        let calls = Fixtures.records(input).map { (methods[Int($0.selector) % methods.count], $0.body) }
        var problems = calls.flatMap { roundTripProblems($0.1) }
        let clock = Fixtures.clock()
        let coordinator = Fixtures.coordinator(clock: clock)
        let service = DtmService(coordinator: coordinator, logger: Fixtures.quiet)
        var codes: [GRPCStatusCode] = []
        for (method, message) in calls {
            let reply = await service.handle(method: method, message: message)
            if reply.status.code != .ok && !reply.message.isEmpty { problems.append("\(method): \(reply.status.code) with a payload") }
            codes.append(reply.status.code)
        }
        problems += await Fixtures.driveStoredTransactions(coordinator, clock: clock)
        return (codes, problems)
    }

    static func roundTripProblems(_ message: [UInt8]) -> [String] {
        var problems: [String] = []
        if let request = try? ProtoCodec.decodeRequest(message),
            (try? ProtoCodec.decodeRequest(try ProtoCodec.encodeRequest(request))) != request
        {
            problems.append("DtmRequest does not survive encode → decode")
        }
        if let registration = try? ProtoCodec.decodeBranchRequest(message),
            (try? ProtoCodec.decodeBranchRequest(try ProtoCodec.encodeBranchRequest(registration))) != registration
        {
            problems.append("DtmBranchRequest does not survive encode → decode")
        }
        _ = try? ProtoCodec.decodeTopicRequest(message)
        return problems
    }
}
