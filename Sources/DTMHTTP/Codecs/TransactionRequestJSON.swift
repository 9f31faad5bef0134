import DTMCore
import FoundationEssentials
import JSONSupport

/// The JSON body of prepare / submit / abort / forceStop / resetNextCronTime / prepareWorkflow (spec §4, §15).
///
/// Every key is optional and `null` means empty (the Python client sends nulls); unknown keys are ignored.
/// Server-owned keys a client may echo back (`status`, `create_time`, `owner`, …) are ignored too.
package struct TransactionRequestJSON: Decodable {
    struct Step: Decodable {
        var action: String?
        var compensate: String?
        var data: String?
    }

    var gid: String?
    var trans_type: String?
    var steps: [Step]?
    var payloads: [String]?
    var custom_data: String?
    var query_prepared: String?
    var `protocol`: String?
    var rollback_reason: String?
    var req_extra: [String: String]?
    var wait_result: Bool?
    var timeout_to_fail: Int64?
    var request_timeout: Int64?
    var retry_interval: Int64?
    var branch_headers: [String: String]?
    var concurrent: Bool?
    var retry_limit: Int64?

    static func decode(_ body: [UInt8]) throws(DTMError) -> TransactionRequest {
        if let fast = scan(body) { return fast.model }
        let json: TransactionRequestJSON
        do {
            json = try JSONDecoder().decode(TransactionRequestJSON.self, from: Data(body))
        } catch {
            throw .invalidArgument(describe(error))
        }
        return json.model
    }

    /// The fast path (see `JSONCursor`): the body when it is an object whose members are all in the subset and
    /// typed as the fields are; nil sends it to JSONDecoder. Unknown keys may hold a string, number in the subset,
    /// boolean or null; a repeated key, any other value or an unknown key in a step falls back.
    static func scan(_ body: [UInt8]) -> TransactionRequestJSON? {
        body.withUnsafeBufferPointer { bytes -> TransactionRequestJSON? in
            var cursor = JSONCursor(bytes)
            var json = TransactionRequestJSON()
            var seen: UInt32 = 0
            let ok = cursor.object { key, c in json.scanMember(key, &c, seen: &seen) }
            return ok && cursor.atEnd() ? json : nil
        }
    }

    /// For the fuzz harness and tests: a description of how the fast path and JSONDecoder disagree on `body`
    /// (the fast path took it but JSONDecoder fails or decodes another request); nil when they agree or the fast
    /// path left it to JSONDecoder.
    package static func fastPathDisagreement(_ body: [UInt8]) -> String? {
        guard let fast = scan(body)?.model else { return nil }
        do {
            let reference = try JSONDecoder().decode(TransactionRequestJSON.self, from: Data(body)).model
            return reference == fast ? nil : "fast path decoded \(fast), JSONDecoder \(reference)"
        } catch {
            return "fast path accepted a body JSONDecoder refuses (\(describe(error)))"
        }
    }

    /// One member; `seen` has a bit per known key, so that a repeated one falls back.
    private mutating func scanMember(_ key: String, _ c: inout JSONCursor, seen: inout UInt32) -> Bool {
        func once(_ bit: UInt32) -> Bool {
            defer { seen |= 1 << bit }
            return seen & (1 << bit) == 0
        }
        func int(_ field: inout Int64?) -> Bool {
            if c.null() { return true }
            guard let v = c.int64() else { return false }
            field = v
            return true
        }
        func flag(_ field: inout Bool?) -> Bool {
            if c.null() { return true }
            guard let v = c.bool() else { return false }
            field = v
            return true
        }
        func text(_ field: inout String?) -> Bool {
            guard let v = c.stringOrNull() else { return false }
            field = v
            return true
        }
        func map(_ field: inout [String: String]?) -> Bool {
            if c.null() { return true }
            guard let v = c.stringObject() else { return false }
            field = v
            return true
        }
        switch key {
        case "gid": return once(0) && text(&gid)
        case "trans_type": return once(1) && text(&trans_type)
        case "custom_data": return once(2) && text(&custom_data)
        case "query_prepared": return once(3) && text(&query_prepared)
        case "protocol": return once(4) && text(&`protocol`)
        case "rollback_reason": return once(5) && text(&rollback_reason)
        case "wait_result": return once(6) && flag(&wait_result)
        case "concurrent": return once(7) && flag(&concurrent)
        case "timeout_to_fail": return once(8) && int(&timeout_to_fail)
        case "request_timeout": return once(9) && int(&request_timeout)
        case "retry_interval": return once(10) && int(&retry_interval)
        case "retry_limit": return once(11) && int(&retry_limit)
        case "req_extra": return once(12) && map(&req_extra)
        case "branch_headers": return once(13) && map(&branch_headers)
        case "payloads":
            guard once(14) else { return false }
            if c.null() { return true }
            guard let v = c.stringArray() else { return false }
            payloads = v
            return true
        case "steps":
            guard once(15) else { return false }
            if c.null() { return true }
            guard let v = StepsScanner.scan(&c, nullSteps: false) else { return false }
            steps = v.map { Step(action: $0.action, compensate: $0.compensate, data: $0.data) }
            return true
        default:
            return c.stringOrNull() != nil || c.bool() != nil || c.int64() != nil
        }
    }

    var model: TransactionRequest {
        var r = TransactionRequest(gid: gid ?? "", transType: trans_type ?? "")
        r.steps = (steps ?? []).map { TransStep(action: $0.action ?? "", compensate: $0.compensate ?? "", data: $0.data) }
        r.payloads = (payloads ?? []).map { Array($0.utf8) }
        r.customData = custom_data ?? ""
        r.queryPrepared = query_prepared ?? ""
        r.transProtocol = (`protocol` ?? "").isEmpty ? TransProtocol.http : `protocol`!
        r.rollbackReason = rollback_reason ?? ""
        r.reqExtra = req_extra ?? [:]
        var o = TransOptions()
        o.waitResult = wait_result ?? false
        o.timeoutToFail = timeout_to_fail ?? 0
        o.requestTimeout = request_timeout ?? 0
        o.retryInterval = retry_interval ?? 0
        o.branchHeaders = branch_headers ?? [:]
        o.concurrent = concurrent ?? false
        o.retryLimit = retry_limit ?? 0
        r.options = o
        return r
    }
}

/// The body of registerBranch: a flat object whose values must all be strings (spec §4.7).
enum BranchRegistrationJSON {
    static func decode(_ body: [UInt8]) throws(DTMError) -> BranchRegistration {
        let map: [String: String]
        do {
            map = try JSONDecoder().decode([String: String].self, from: Data(body))
        } catch {
            throw .invalidArgument("registerBranch body must be a JSON object whose values are all strings: \(describe(error))")
        }
        return BranchRegistration(
            gid: map["gid"] ?? "", transType: map["trans_type"] ?? "", branchID: map["branch_id"] ?? "",
            data: map, busiPayload: Array((map["data"] ?? "").utf8))
    }
}
