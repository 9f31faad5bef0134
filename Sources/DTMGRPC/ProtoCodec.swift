internal import CProtobufC
package import DTMCore
internal import DTMProtoC
import FoundationEssentials
import Glibc
import JSONSupport
package import ProtoCSupport

/// protobuf-c ⇄ model for the messages of `dtmgimp.Dtm` (spec §6, §6.1). The only code that touches the
/// generated C structs: every unpacked message is freed before returning, every packed one is built from
/// memory this file allocates and frees.
package enum ProtoCodec {
    // MARK: - Decoding requests

    /// `DtmRequest` → the request model; `protocol` is always `grpc` (spec §6.1).
    package static func decodeRequest(_ bytes: [UInt8]) throws(DTMError) -> TransactionRequest {
        let message = bytes.withUnsafeBufferPointer { dtmgimp__dtm_request__unpack(nil, $0.count, $0.baseAddress) }
        guard let message else { throw .invalidArgument("the request is not a valid dtmgimp.DtmRequest protobuf message") }
        defer { dtmgimp__dtm_request__free_unpacked(message, nil) }
        let m = message.pointee
        var r = TransactionRequest(gid: ProtoC.string(m.gid), transType: ProtoC.string(m.transtype))
        r.transProtocol = TransProtocol.grpc
        r.customData = ProtoC.string(m.customeddata)
        r.queryPrepared = ProtoC.string(m.queryprepared)
        r.rollbackReason = ProtoC.string(m.rollbackreason)
        r.payloads = (0..<m.n_binpayloads).map { ProtoC.bytes(m.binpayloads[$0]) }
        for i in 0..<m.n_reqextra {
            let entry = m.reqextra[i]!.pointee  // protobuf-c fills every one of the n_reqextra entries
            r.reqExtra[ProtoC.string(entry.key)] = ProtoC.string(entry.value)
        }
        if let o = m.transoptions?.pointee {
            r.options.waitResult = o.waitresult != 0
            r.options.timeoutToFail = o.timeouttofail
            r.options.retryInterval = o.retryinterval
            r.options.requestTimeout = o.requesttimeout
            r.options.retryLimit = o.retrylimit
            for i in 0..<o.n_branchheaders {
                let entry = o.branchheaders[i]!.pointee  // likewise, n_branchheaders entries
                r.options.branchHeaders[ProtoC.string(entry.key)] = ProtoC.string(entry.value)
            }
        }
        r.steps = try decodeSteps(ProtoC.string(m.steps))
        return r
    }

    /// `Steps` is a JSON string of `[{"action":…,"compensate":…}]`; empty or `null` means no steps. Legacy
    /// `data` fields are not payloads on the gRPC path (spec §6.1).
    static func decodeSteps(_ text: String) throws(DTMError) -> [TransStep] {
        if text.isEmpty || text == "null" { return [] }
        if let steps = StepsScanner.scan(text, nullSteps: true) {
            return steps.map { TransStep(action: $0.action, compensate: $0.compensate) }  // `data` is no payload here
        }
        return try decodeStepsWithJSONDecoder(text)
    }

    /// The general path: any JSON the Go client could send (escapes, other value types answered as errors).
    static func decodeStepsWithJSONDecoder(_ text: String) throws(DTMError) -> [TransStep] {
        struct Step: Decodable {
            var action: String?
            var compensate: String?
        }
        do {
            let steps = try JSONDecoder().decode([Step?].self, from: Data(text.utf8))
            return steps.map { TransStep(action: $0?.action ?? "", compensate: $0?.compensate ?? "") }
        } catch {
            throw .invalidArgument("Steps must be a JSON array of {\"action\",\"compensate\"} objects")
        }
    }

    /// `DtmBranchRequest` → registration; `Op` (field 4) is ignored as DTM does: the workflow op is `Data["op"]`.
    package static func decodeBranchRequest(_ bytes: [UInt8]) throws(DTMError) -> BranchRegistration {
        let message = bytes.withUnsafeBufferPointer { dtmgimp__dtm_branch_request__unpack(nil, $0.count, $0.baseAddress) }
        guard let message else { throw .invalidArgument("the request is not a valid dtmgimp.DtmBranchRequest protobuf message") }
        defer { dtmgimp__dtm_branch_request__free_unpacked(message, nil) }
        let m = message.pointee
        var data: [String: String] = [:]
        for i in 0..<m.n_data {
            let entry = m.data[i]!.pointee  // likewise, n_data entries
            data[ProtoC.string(entry.key)] = ProtoC.string(entry.value)
        }
        return BranchRegistration(
            gid: ProtoC.string(m.gid), transType: ProtoC.string(m.transtype), branchID: ProtoC.string(m.branchid), data: data,
            busiPayload: ProtoC.bytes(m.busipayload))
    }

    /// `DtmTopicRequest` → (topic, url, remark).
    package static func decodeTopicRequest(_ bytes: [UInt8]) throws(DTMError) -> (topic: String, url: String, remark: String) {
        let message = bytes.withUnsafeBufferPointer { dtmgimp__dtm_topic_request__unpack(nil, $0.count, $0.baseAddress) }
        guard let message else { throw .invalidArgument("the request is not a valid dtmgimp.DtmTopicRequest protobuf message") }
        defer { dtmgimp__dtm_topic_request__free_unpacked(message, nil) }
        return (ProtoC.string(message.pointee.topic), ProtoC.string(message.pointee.url), ProtoC.string(message.pointee.remark))
    }

    /// `google.protobuf.Empty`: any well-formed message is accepted (unknown fields are skipped, as protobuf does).
    package static func decodeEmpty(_ bytes: [UInt8]) throws(DTMError) {
        let message = bytes.withUnsafeBufferPointer { google__protobuf__empty__unpack(nil, $0.count, $0.baseAddress) }
        guard let message else { throw .invalidArgument("the request is not a valid google.protobuf.Empty protobuf message") }
        google__protobuf__empty__free_unpacked(message, nil)
    }

    // MARK: - Encoding replies

    /// `DtmGidReply { Gid }`.
    package static func encodeGidReply(_ gid: String) throws(ProtoPackError) -> [UInt8] {
        var arena = CArena()
        defer { arena.free() }
        var reply = Dtmgimp__DtmGidReply()
        dtmgimp__dtm_gid_reply__init(&reply)
        reply.gid = arena.string(gid)
        return try ProtoC.pack(size: dtmgimp__dtm_gid_reply__get_packed_size(&reply)) { dtmgimp__dtm_gid_reply__pack(&reply, $0) }
    }

    /// `DtmProgressesReply`: the transaction (gid, status, rollback_reason, result — DTM leaves result empty
    /// here; we fill it, spec §6.2 Rec) and one progress per stored branch row.
    package static func encodeProgressesReply(_ t: GlobalTransaction, _ branches: [Branch]) throws(ProtoPackError) -> [UInt8] {
        var arena = CArena()
        defer { arena.free() }
        let transaction = arena.allocate(Dtmgimp__DtmTransaction.self)
        dtmgimp__dtm_transaction__init(transaction)
        transaction.pointee.gid = arena.string(t.gid)
        transaction.pointee.status = arena.string(t.status.rawValue)
        transaction.pointee.rollbackreason = arena.string(t.rollbackReason)
        transaction.pointee.result = arena.string(t.result)
        let list = arena.allocate(UnsafeMutablePointer<Dtmgimp__DtmProgress>?.self, count: max(branches.count, 1))
        for (i, b) in branches.enumerated() {
            let p = arena.allocate(Dtmgimp__DtmProgress.self)
            dtmgimp__dtm_progress__init(p)
            p.pointee.status = arena.string(b.status.rawValue)
            p.pointee.bindata = arena.binary(b.binData)
            p.pointee.branchid = arena.string(b.branchID)
            p.pointee.op = arena.string(b.op)
            list[i] = p
        }
        var reply = Dtmgimp__DtmProgressesReply()
        dtmgimp__dtm_progresses_reply__init(&reply)
        reply.transaction = transaction
        reply.n_progresses = branches.count
        reply.progresses = list
        return try ProtoC.pack(size: dtmgimp__dtm_progresses_reply__get_packed_size(&reply)) { dtmgimp__dtm_progresses_reply__pack(&reply, $0) }
    }

    /// `DtmRequest` from the model: what a gRPC client sends (tests and the benchmark use it).
    package static func encodeRequest(_ r: TransactionRequest, stepsJSON: String? = nil) throws(ProtoPackError) -> [UInt8] {
        var arena = CArena()
        defer { arena.free() }
        let options = arena.allocate(Dtmgimp__DtmTransOptions.self)
        dtmgimp__dtm_trans_options__init(options)
        options.pointee.waitresult = r.options.waitResult ? 1 : 0
        options.pointee.timeouttofail = r.options.timeoutToFail
        options.pointee.retryinterval = r.options.retryInterval
        options.pointee.requesttimeout = r.options.requestTimeout
        options.pointee.retrylimit = r.options.retryLimit
        let headers = r.options.branchHeaders.sorted { $0.key < $1.key }
        let headerList = arena.allocate(UnsafeMutablePointer<Dtmgimp__DtmTransOptions__BranchHeadersEntry>?.self, count: max(headers.count, 1))
        for (i, (k, v)) in headers.enumerated() {
            let e = arena.allocate(Dtmgimp__DtmTransOptions__BranchHeadersEntry.self)
            dtmgimp__dtm_trans_options__branch_headers_entry__init(e)
            e.pointee.key = arena.string(k)
            e.pointee.value = arena.string(v)
            headerList[i] = e
        }
        options.pointee.n_branchheaders = headers.count
        options.pointee.branchheaders = headerList
        let extra = r.reqExtra.sorted { $0.key < $1.key }
        let extraList = arena.allocate(UnsafeMutablePointer<Dtmgimp__DtmRequest__ReqExtraEntry>?.self, count: max(extra.count, 1))
        for (i, (k, v)) in extra.enumerated() {
            let e = arena.allocate(Dtmgimp__DtmRequest__ReqExtraEntry.self)
            dtmgimp__dtm_request__req_extra_entry__init(e)
            e.pointee.key = arena.string(k)
            e.pointee.value = arena.string(v)
            extraList[i] = e
        }
        let payloads = arena.allocate(ProtobufCBinaryData.self, count: max(r.payloads.count, 1))
        for (i, p) in r.payloads.enumerated() { payloads[i] = arena.binary(p) }
        var m = Dtmgimp__DtmRequest()
        dtmgimp__dtm_request__init(&m)
        m.gid = arena.string(r.gid)
        m.transtype = arena.string(r.transType)
        m.transoptions = options
        m.customeddata = arena.string(r.customData)
        m.n_binpayloads = r.payloads.count
        m.binpayloads = payloads
        m.queryprepared = arena.string(r.queryPrepared)
        m.steps = arena.string(stepsJSON ?? stepsText(r.steps))
        m.n_reqextra = extra.count
        m.reqextra = extraList
        m.rollbackreason = arena.string(r.rollbackReason)
        return try ProtoC.pack(size: dtmgimp__dtm_request__get_packed_size(&m)) { dtmgimp__dtm_request__pack(&m, $0) }
    }

    /// The `Steps` JSON the Go client sends (`"null"` when there are none).
    static func stepsText(_ steps: [TransStep]) -> String {
        struct Step: Encodable {
            var action: String
            var compensate: String
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes  // as Go's encoding/json writes URLs
        guard !steps.isEmpty, let data = try? encoder.encode(steps.map { Step(action: $0.action, compensate: $0.compensate) }) else {
            return "null"
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// `DtmBranchRequest` from the model (tests).
    package static func encodeBranchRequest(_ r: BranchRegistration) throws(ProtoPackError) -> [UInt8] {
        var arena = CArena()
        defer { arena.free() }
        let data = r.data.sorted { $0.key < $1.key }
        let list = arena.allocate(UnsafeMutablePointer<Dtmgimp__DtmBranchRequest__DataEntry>?.self, count: max(data.count, 1))
        for (i, (k, v)) in data.enumerated() {
            let e = arena.allocate(Dtmgimp__DtmBranchRequest__DataEntry.self)
            dtmgimp__dtm_branch_request__data_entry__init(e)
            e.pointee.key = arena.string(k)
            e.pointee.value = arena.string(v)
            list[i] = e
        }
        var m = Dtmgimp__DtmBranchRequest()
        dtmgimp__dtm_branch_request__init(&m)
        m.gid = arena.string(r.gid)
        m.transtype = arena.string(r.transType)
        m.branchid = arena.string(r.branchID)
        m.op = arena.string("")
        m.n_data = data.count
        m.data = list
        m.busipayload = arena.binary(r.busiPayload)
        return try ProtoC.pack(size: dtmgimp__dtm_branch_request__get_packed_size(&m)) { dtmgimp__dtm_branch_request__pack(&m, $0) }
    }
}
