/// Per-transaction options (spec §2.3). Persisted as JSON in the `options` column with DTM's keys: written by
/// `TransOptionsJSON` (JSONSupport), the one writer of that shape; read through this Decodable conformance.
package struct TransOptions: Sendable, Equatable, Decodable {
    package var waitResult: Bool = false
    package var timeoutToFail: Int64 = 0
    package var requestTimeout: Int64 = 0
    package var retryInterval: Int64 = 0
    package var branchHeaders: [String: String] = [:]
    /// msg only: run branches concurrently.
    package var concurrent: Bool = false
    /// saga only: immediate in-round retries.
    package var retryLimit: Int64 = 0
    package var retryCount: Int64 = 0

    package init() {}

    enum CodingKeys: String, CodingKey {
        case waitResult = "wait_result"
        case timeoutToFail = "timeout_to_fail"
        case requestTimeout = "request_timeout"
        case retryInterval = "retry_interval"
        case branchHeaders = "branch_headers"
        case concurrent
        case retryLimit = "retry_limit"
        case retryCount = "retry_count"
    }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        waitResult = try c.decodeIfPresent(Bool.self, forKey: .waitResult) ?? false
        timeoutToFail = try c.decodeIfPresent(Int64.self, forKey: .timeoutToFail) ?? 0
        requestTimeout = try c.decodeIfPresent(Int64.self, forKey: .requestTimeout) ?? 0
        retryInterval = try c.decodeIfPresent(Int64.self, forKey: .retryInterval) ?? 0
        branchHeaders = try c.decodeIfPresent([String: String].self, forKey: .branchHeaders) ?? [:]
        concurrent = try c.decodeIfPresent(Bool.self, forKey: .concurrent) ?? false
        retryLimit = try c.decodeIfPresent(Int64.self, forKey: .retryLimit) ?? 0
        retryCount = try c.decodeIfPresent(Int64.self, forKey: .retryCount) ?? 0
    }
}
