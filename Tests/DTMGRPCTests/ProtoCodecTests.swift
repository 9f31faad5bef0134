import DTMCore
import HTTP2
@testable import DTMGRPC
import JSONSupport
import Testing

@Suite("protobuf-c codec")
struct ProtoCodecTests {
    @Test("DtmRequest round-trips every field; protocol is grpc")
    func requestRoundTrip() throws {
        var r = TransactionRequest(gid: "g1", transType: "saga")
        r.steps = [
            TransStep(action: "127.0.0.1:1/busi.Busi/TransOut", compensate: "127.0.0.1:1/busi.Busi/TransOutRevert"), TransStep(action: "a2", compensate: ""),
        ]
        r.payloads = [[0, 1, 2, 255], []]
        r.customData = #"{"concurrent":true}"#
        r.queryPrepared = "127.0.0.1:1/busi.Busi/QueryPrepared"
        r.rollbackReason = "why"
        r.reqExtra = ["status": "succeed", "result": "x"]
        r.options.waitResult = true
        r.options.timeoutToFail = 60
        r.options.retryInterval = 11
        r.options.requestTimeout = 7
        r.options.retryLimit = 2
        r.options.branchHeaders = ["test_header": "yes", "b": "2"]
        let decoded = try ProtoCodec.decodeRequest(try ProtoCodec.encodeRequest(r))
        var expected = r
        expected.transProtocol = TransProtocol.grpc
        #expect(decoded == expected)
    }

    @Test("Steps: empty and \"null\" mean none; bad JSON is INVALID_ARGUMENT")
    func steps() throws {
        #expect(try ProtoCodec.decodeSteps("").isEmpty)
        #expect(try ProtoCodec.decodeSteps("null").isEmpty)
        #expect(throws: DTMError.self) { try ProtoCodec.decodeSteps("{") }
        #expect(ProtoCodec.stepsText([]) == "null")
    }

    @Test("the Steps fast path agrees with JSONDecoder wherever it answers, and answers the common shapes")
    func stepsScannerAgreesWithDecoder() throws {
        let common = [
            #"[{"action":"127.0.0.1:1/busi.Busi/TransOut","compensate":"127.0.0.1:1/busi.Busi/TransOutRevert"}]"#,
            #"[ {"compensate":"c","action":"a"} , null, {"action":"a2"}, {} ]"#,
            #"[{"action":"x","other":"z"}]"#,
            "[]",
            #"[{"action":"127.0.0.1:1\/busi.Busi\/TransOut","compensate":"a\"b\\c\n\t"}]"#,
        ]
        func fastPath(_ text: String) -> [TransStep]? {
            StepsScanner.scan(text, nullSteps: true).map { $0.map { TransStep(action: $0.action, compensate: $0.compensate) } }
        }
        for text in common { #expect(fastPath(text) != nil, "fast path should handle \(text)") }
        let fallBack = [
            #"[{"action":"a\u003cb","compensate":"\"q\""}]"#, #"[{"action":"a\x"}]"#, #"[{"action":"a\"}]"#, #"[{"action":1}]"#, #"[{"action":"a"}] x"#,
            #"[{"action":"a",}]"#, #"[{"action":"a"},]"#, #"[{"action":"é\n"}]"#, "[nul]", #"{"action":"a"}"#,
            #"[{"action":["a"]}]"#, #"[{"action":"unterminated]"#, "[", #"[{"action":null}]"#,
            #"[{"action":"x","action":"y"}]"#,
        ]
        for text in common + fallBack {
            let decoded = Result { try ProtoCodec.decodeStepsWithJSONDecoder(text) }
            guard let fast = fastPath(text) else { continue }
            #expect(try decoded.get() == fast, "fast path disagrees with JSONDecoder on \(text)")
        }
        #expect(try ProtoCodec.decodeSteps(#"[{"action":"a\u003cb"}]"#) == [TransStep(action: "a<b", compensate: "")])
        #expect(fastPath(#"[{"action":"a\u003cb"}]"#) == nil)
    }

    @Test("malformed protobuf is refused with a message naming the message type")
    func malformed() {
        #expect(throws: DTMError.invalidArgument("the request is not a valid dtmgimp.DtmRequest protobuf message")) {
            try ProtoCodec.decodeRequest([0x0A, 0xFF, 0x01])
        }
        #expect(throws: DTMError.self) { try ProtoCodec.decodeBranchRequest([0xFF]) }
        #expect(throws: DTMError.self) { try ProtoCodec.decodeEmpty([0x0A, 0x05]) }
        #expect(throws: Never.self) { try ProtoCodec.decodeEmpty([]) }
    }

    @Test("DtmBranchRequest round-trips; Op is ignored")
    func branchRequest() throws {
        let reg = BranchRegistration(gid: "g", transType: "tcc", branchID: "01", data: ["confirm": "c", "cancel": "x"], busiPayload: [9, 8])
        #expect(try ProtoCodec.decodeBranchRequest(try ProtoCodec.encodeBranchRequest(reg)) == reg)
    }

    @Test("DtmGidReply is field 1, a string")
    func gidReply() throws {
        #expect(try ProtoCodec.encodeGidReply("ab") == [0x0A, 2, UInt8(ascii: "a"), UInt8(ascii: "b")])
    }

    @Test("gRPC status mapping follows DTM")
    func mapping() {
        #expect(StatusMapping.status(for: DTMError.failure("x"), gid: "g").code == .aborted)
        #expect(StatusMapping.status(for: DTMError.ongoing("x"), gid: nil).code == .failedPrecondition)
        #expect(StatusMapping.status(for: DTMError.invalidArgument("x"), gid: nil).code == .invalidArgument)
        #expect(StatusMapping.status(for: DTMError.storageNotFound(""), gid: "g") == GRPCStatus(.internal, "storage: NotFound (gid: g)"))
        #expect(StatusMapping.status(for: DTMError.other("topic not found"), gid: nil) == GRPCStatus(.unknown, "topic not found"))
    }
}
