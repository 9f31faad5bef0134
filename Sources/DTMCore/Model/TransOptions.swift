/// Per-transaction options (spec §2.3). Persisted as JSON in the `options` column with DTM's keys.
public struct TransOptions: Sendable, Equatable, Codable {
    public var waitResult: Bool = false
    public var timeoutToFail: Int64 = 0
    public var requestTimeout: Int64 = 0
    public var retryInterval: Int64 = 0
    public var branchHeaders: [String: String] = [:]
    /// msg only: run branches concurrently.
    public var concurrent: Bool = false
    /// saga only: immediate in-round retries.
    public var retryLimit: Int64 = 0
    public var retryCount: Int64 = 0

    public init() {}

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

    // DTM omits empty values except `concurrent` (Go `omitempty`), so the stored JSON matches DTM's.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if waitResult { try c.encode(true, forKey: .waitResult) }
        if timeoutToFail != 0 { try c.encode(timeoutToFail, forKey: .timeoutToFail) }
        if requestTimeout != 0 { try c.encode(requestTimeout, forKey: .requestTimeout) }
        if retryInterval != 0 { try c.encode(retryInterval, forKey: .retryInterval) }
        if !branchHeaders.isEmpty { try c.encode(branchHeaders, forKey: .branchHeaders) }
        try c.encode(concurrent, forKey: .concurrent)
        if retryLimit != 0 { try c.encode(retryLimit, forKey: .retryLimit) }
        if retryCount != 0 { try c.encode(retryCount, forKey: .retryCount) }
    }

    public init(from decoder: any Decoder) throws {
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
