/// A transaction that needs an operator's look: retried beyond `AlertRetryLimit`, or overdue.
package struct AttentionItem: Sendable, Equatable {
    package var transaction: GlobalTransaction
    package var lastError: String
    /// Back-offs so far: how many times the interval doubled from the transaction's base interval.
    package var retries: Int
    package var overdue: Bool
}

extension Coordinator {
    /// Unfinished transactions, oldest first, looked at from the oldest: how many at most, whatever `limit` asks.
    package static let attentionScan = 1000

    /// The attention view (`GET /api/dtmsvr/attention`): among the oldest unfinished transactions, those retried
    /// more than `AlertRetryLimit` times or due for longer than `RetryInterval`, oldest first, with their last error.
    package func attention(limit: Int) async throws -> [AttentionItem] {
        let at = now
        let overdueBefore = at.adding(seconds: -Double(config.retryInterval))
        var items: [AttentionItem] = []
        for (t, lastError) in try await store.unfinishedOldest(limit: Self.attentionScan) {
            let retries = config.backOffLevel(interval: t.nextCronInterval, options: t.options)
            let overdue = t.nextCronTime.map { $0 < overdueBefore } ?? false
            guard retries > config.alertRetryLimit || overdue else { continue }
            items.append(AttentionItem(transaction: t, lastError: lastError, retries: Int(retries), overdue: overdue))
            if items.count >= limit { break }
        }
        return items
    }
}
