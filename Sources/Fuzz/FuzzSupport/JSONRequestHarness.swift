import DTMHTTP

/// FuzzJSONRequest: JSON request decoding (TransactionRequestJSON, BranchRegistrationJSON, the JSON-RPC
/// endpoint) through APIRouter.handle, which decodes a body into a request and runs it; GET and DELETE routes
/// take the record's bytes as their query string / topic name.
///
/// Input: up to 8 records `route byte, u16 length, body` (`Fixtures.records`), each input on a fresh
/// in-memory coordinator (`Fixtures.coordinator`). Every answer must be an HTTP status, and every body the JSON
/// fast path decodes must decode to the same request with JSONDecoder. Then the stored transactions are driven
/// through the cron path over a clock moved up to the end of time (`Fixtures.driveStoredTransactions`).
package enum JSONRequestHarness {
    /// (method, path; a path ending in "?" or "/" gets the body appended instead of sending it).
    static let routes: [(String, String)] = [
        ("POST", "/api/dtmsvr/prepare"), ("POST", "/api/dtmsvr/submit"), ("POST", "/api/dtmsvr/abort"),
        ("POST", "/api/dtmsvr/forceStop"), ("POST", "/api/dtmsvr/resetNextCronTime"), ("POST", "/api/dtmsvr/registerBranch"),
        ("POST", "/api/dtmsvr/registerTccBranch"), ("POST", "/api/dtmsvr/registerXaBranch"), ("POST", "/api/dtmsvr/prepareWorkflow"),
        ("POST", "/api/json-rpc"), ("GET", "/api/dtmsvr/query?"), ("GET", "/api/dtmsvr/all?"), ("GET", "/api/dtmsvr/scanKV?"),
        ("GET", "/api/dtmsvr/queryKV?"), ("GET", "/api/dtmsvr/resetCronTime?"), ("GET", "/api/dtmsvr/subscribe?"),
        ("GET", "/api/dtmsvr/unsubscribe?"), ("DELETE", "/api/dtmsvr/topic/"), ("GET", "/api/dtmsvr/newGid"), ("GET", "/api/ping"),
    ]

    /// The HTTP status of every call, and every broken invariant (empty when all hold).
    package static func run(_ input: [UInt8]) async -> (statuses: [Int], problems: [String]) {
        let calls = Fixtures.records(input).map { record -> (String, String, [UInt8]) in
            let (method, path) = routes[Int(record.selector) % routes.count]
            if path.hasSuffix("?") || path.hasSuffix("/") {
                return (method, path + String(decoding: record.body, as: UTF8.self), [])
            }
            return (method, path, record.body)
        }
        let clock = Fixtures.clock()
        let coordinator = Fixtures.coordinator(clock: clock)
        let router = APIRouter(coordinator: coordinator, version: "fuzz", logger: Fixtures.quiet)
        var statuses: [Int] = []
        var problems: [String] = []
        for (method, uri, body) in calls {
            if let disagreement = TransactionRequestJSON.fastPathDisagreement(body) { problems.append("\(uri): \(disagreement)") }
            let status = await router.handle(method: method, uri: uri, body: body).status
            if !(200..<600).contains(status) { problems.append("\(method) \(uri): status \(status)") }
            statuses.append(status)
        }
        problems += await Fixtures.driveStoredTransactions(coordinator, clock: clock)
        return (statuses, problems)
    }
}
