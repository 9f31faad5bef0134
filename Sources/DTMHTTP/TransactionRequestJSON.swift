import DTMCore
import FoundationEssentials

/// The JSON body of prepare / submit / abort / forceStop / resetNextCronTime / prepareWorkflow (spec §4, §15).
///
/// Every key is optional and `null` means empty (the Python client sends nulls); unknown keys are ignored.
/// Server-owned keys a client may echo back (`status`, `create_time`, `owner`, …) are ignored too.
struct TransactionRequestJSON: Decodable {
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
        let json: TransactionRequestJSON
        do {
            json = try JSONDecoder().decode(TransactionRequestJSON.self, from: Data(body))
        } catch {
            throw .invalidArgument(describe(error))
        }
        return json.model
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
