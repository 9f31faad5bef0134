@testable import DTMCore
import Testing

/// The one place client input is checked: each refusal is the first problem, naming the field.
@Suite("transaction validator")
struct TransactionValidatorTests {
    let validator = TransactionValidator(config: EngineConfig(), coding: JSONTestCoding())

    func saga(_ edit: (inout TransactionRequest) -> Void) -> TransactionRequest {
        var r = TransactionRequest(gid: "g1", transType: "saga")
        r.steps = [TransStep(action: "http://127.0.0.1:1/a", compensate: "http://127.0.0.1:1/c")]
        r.payloads = [[1]]
        edit(&r)
        return r
    }

    func refusal(_ request: TransactionRequest, status: GlobalStatus = .submitted) -> String? {
        do throws(DTMError) {
            _ = try validator.check(request, status: status)
            return nil
        } catch {
            return error.description
        }
    }

    @Test("a valid saga passes and its type comes back")
    func valid() throws {
        #expect(try validator.check(saga { _ in }, status: .submitted) == .saga)
    }

    @Test(
        "requests are refused with the field named",
        arguments: ["gid", "trans_type", "payloads", "custom_data", "query_prepared", "steps[0]", "retry_limit", "at least one step"])
    func refused(field: String) {
        let long = "http://" + String(repeating: "a", count: 5000)
        let request = saga { r in
            switch field {
            case "gid": r.gid = ""
            case "trans_type": r.transType = "sagaa"
            case "payloads": r.payloads = [[1], [2]]
            case "custom_data": r.customData = #"{"orders":{"5":[0]}}"#
            case "query_prepared": r.queryPrepared = long
            case "steps[0]": r.steps[0].action = long
            case "retry_limit": r.options.retryLimit = 101
            default:
                r.steps = []
                r.payloads = []
            }
        }
        let message = refusal(request)
        #expect(message?.contains(field) == true, "\(message ?? "accepted")")
    }

    @Test("an allow-list applies to every URL of a request")
    func allowList() throws {
        var config = EngineConfig()
        config.branchHostAllowList = try BranchHostAllowList(parsing: "127.0.0.1")
        let strict = TransactionValidator(config: config, coding: JSONTestCoding())
        #expect(throws: DTMError.self) { try strict.check(saga { $0.steps[0].compensate = "http://evil.example/c" }, status: .submitted) }
        #expect(throws: DTMError.self) { try strict.check(saga { $0.queryPrepared = "http://evil.example/q" }, status: .prepared) }
        #expect(throws: DTMError.self) { try strict.checkSubscription(topic: "t", url: "http://evil.example/s", remark: "") }
        #expect(try strict.check(saga { _ in }, status: .submitted) == .saga)
    }

    @Test("registrations: id, type and workflow progress are checked; rows by URL and by count")
    func registrations() throws {
        let tcc = BranchRegistration(gid: "g1", transType: "tcc", branchID: "01", data: [:], busiPayload: [])
        #expect(try validator.check(tcc) == .tcc)
        var noID = tcc
        noID.branchID = ""
        #expect(throws: DTMError.self) { try validator.check(noID) }
        var saga = tcc
        saga.transType = "saga"
        #expect(throws: DTMError.self) { try validator.check(saga) }
        var workflow = tcc
        workflow.transType = "workflow"
        workflow.data = ["op": "action", "status": "prepared"]
        #expect(throws: DTMError.self) { try validator.check(workflow) }
        let row = Branch(gid: "g1", url: "http://127.0.0.1:1/x", binData: [], branchID: "01", op: "confirm", createTime: Timestamp(microseconds: 0))
        try validator.check(rows: [row], existing: 0, gid: "g1")
        #expect(throws: DTMError.self) { try validator.check(rows: [row], existing: validator.limits.maxBranchRows, gid: "g1") }
    }
}
