import DTMProtoC
import Testing

/// The generated protobuf-c code links and encodes the field numbers and types of dtm-spec §6.
@Suite("protoc-c output (DTMProtoC)")
struct DTMProtoCTests {
    @Test("DtmRequest packs to the expected wire bytes and unpacks back")
    func dtmRequestWire() throws {
        var request = Dtmgimp__DtmRequest()
        dtmgimp__dtm_request__init(&request)
        let payload: [UInt8] = [0x08, 0x1E]  // busi.ReqGrpc{Amount: 30}
        let wire: [UInt8] = try "g1".withCString { gid in
            try "saga".withCString { transType in
                try payload.withUnsafeBufferPointer { payloadPtr in
                    request.gid = UnsafeMutablePointer(mutating: gid)
                    request.transtype = UnsafeMutablePointer(mutating: transType)
                    var bin = ProtobufCBinaryData(len: payloadPtr.count, data: UnsafeMutablePointer(mutating: payloadPtr.baseAddress))
                    return try withUnsafeMutablePointer(to: &bin) { binPtr in
                        request.n_binpayloads = 1
                        request.binpayloads = binPtr
                        let size = withUnsafePointer(to: &request) { dtmgimp__dtm_request__get_packed_size($0) }
                        var out = [UInt8](repeating: 0, count: size)
                        let written = withUnsafePointer(to: &request) { dtmgimp__dtm_request__pack($0, &out) }
                        try #require(written == size)
                        return out
                    }
                }
            }
        }
        // Gid = 1 (string), TransType = 2 (string), BinPayloads = 5 (bytes).
        #expect(wire == [0x0A, 2, 0x67, 0x31, 0x12, 4, 0x73, 0x61, 0x67, 0x61, 0x2A, 2, 0x08, 0x1E])

        let decoded = try #require(wire.withUnsafeBufferPointer { dtmgimp__dtm_request__unpack(nil, $0.count, $0.baseAddress) })
        defer { dtmgimp__dtm_request__free_unpacked(decoded, nil) }
        #expect(String(cString: decoded.pointee.gid) == "g1")
        #expect(String(cString: decoded.pointee.transtype) == "saga")
        #expect(String(cString: decoded.pointee.steps) == "", "absent strings are the empty string")
        #expect(decoded.pointee.transoptions == nil)
        #expect(decoded.pointee.n_binpayloads == 1)
        let bin = decoded.pointee.binpayloads[0]
        #expect(Array(UnsafeBufferPointer(start: bin.data, count: bin.len)) == payload)
    }

    @Test("DtmTransOptions map field 5 and int64 fields; busi.ReqGrpc decodes")
    func otherMessages() throws {
        // WaitResult=1 true, RequestTimeout=6 = 8, BranchHeaders=5 {"k":"v"}.
        let options: [UInt8] = [0x08, 1, 0x2A, 6, 0x0A, 1, 0x6B, 0x12, 1, 0x76, 0x30, 8]
        let decoded = try #require(options.withUnsafeBufferPointer { dtmgimp__dtm_trans_options__unpack(nil, $0.count, $0.baseAddress) })
        defer { dtmgimp__dtm_trans_options__free_unpacked(decoded, nil) }
        #expect(decoded.pointee.waitresult != 0)
        #expect(decoded.pointee.requesttimeout == 8)
        #expect(decoded.pointee.n_branchheaders == 1)
        #expect(String(cString: decoded.pointee.branchheaders[0]!.pointee.key) == "k")
        #expect(String(cString: decoded.pointee.branchheaders[0]!.pointee.value) == "v")

        let req: [UInt8] = [0x08, 0x1E, 0x12, 7] + Array("FAILURE".utf8)
        let busi = try #require(req.withUnsafeBufferPointer { busi__req_grpc__unpack(nil, $0.count, $0.baseAddress) })
        defer { busi__req_grpc__free_unpacked(busi, nil) }
        #expect(busi.pointee.amount == 30)
        #expect(String(cString: busi.pointee.transoutresult) == "FAILURE")

        var empty = Google__Protobuf__Empty()
        google__protobuf__empty__init(&empty)
        #expect(withUnsafePointer(to: &empty) { google__protobuf__empty__get_packed_size($0) } == 0)
    }
}
