extension Coordinator {
    /// Counts stop here: a reading of the backlog costs a bounded number of index entries.
    package static let backlogCap = 100_000

    /// Unfinished transactions by status, those due now, and those due for longer than `RetryInterval` (the cron
    /// loop is behind on them): the console's counters, `GET /api/dtmsvr/stats`.
    package func backlog() async throws -> Backlog {
        let at = now
        return try await store.backlog(now: at, overdueBefore: at.adding(seconds: -Double(config.retryInterval)), cap: Self.backlogCap)
    }
}
