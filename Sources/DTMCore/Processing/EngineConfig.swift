/// The server settings the state engine reads (DTM's names and defaults, spec §12 / §9.4).
package struct EngineConfig: Sendable, Equatable {
    /// Cron poll period when idle, seconds.
    package var transCronInterval: Double = 3
    /// Default timeout for msg/tcc/xa, seconds.
    package var timeoutToFail: Int64 = 35
    /// Base retry interval and cron lease, seconds.
    package var retryInterval: Int64 = 10
    /// Default branch call timeout, seconds; a saga round's budget is this + 2.
    package var requestTimeout: Int64 = 3
    /// Longest branch call timeout, seconds: a transaction's `request_timeout` may lower the default or raise it
    /// up to this. Not a DTM key (DTM takes any value, so one transaction could hold a call open for years).
    package var maxRequestTimeout: Int64 = 60
    /// Longest a round claimed by the cron loop may run, seconds; then it is cancelled and backed off, so that
    /// slow branches cannot keep the loop's slots. Not a DTM key.
    package var roundTimeout: Double = 120
    /// Back-off level from which the alert webhook fires.
    package var alertRetryLimit: Int64 = 3
    /// Most transactions the cron loop processes at once (DTM: one). Not a DTM key.
    package var cronConcurrency: Int = 16
    /// Most transactions processed in the background right after submit; beyond it the cron loop takes over
    /// (the transaction is already durable). Bounds memory under overload. Not a DTM key.
    package var maxInflightRounds: Int = 20_000
    /// Longest back-off interval, seconds; 0 = no cap (DTM doubles without limit). Not a DTM key.
    package var maxRetryInterval: Int64 = 3600
    /// Hosts branch, check-back and resume URLs may name; nil = any host (DTM's behaviour). Not a DTM key.
    package var branchHostAllowList: BranchHostAllowList?
    /// DTM's `UpdateBranchSync`: true (1, the default) stores a branch's new status before the round calls or
    /// waits on another branch, so a step that answered is not called again after a crash; false (0) keeps the
    /// statuses in memory until the round's next write of the global row or its end (one write per round), at
    /// the price of repeating those steps after a crash. Both write the last status with the final status change.
    package var updateBranchSync = true
    /// Seconds a round's lease outlasts the timeout of a call it starts: covers clock differences between
    /// coordinators and the store's write latency (README, Security: one caller per branch op). Not a DTM key.
    package var leaseMargin: Double = 3
    /// Request limits.
    package var limits = Limits()

    package init() {}
}
