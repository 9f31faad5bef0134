/// How a transaction's next cron time moves (spec §9.3).
package enum ScheduleUpdate: Sendable, Equatable {
    /// Back to the base interval (after progress).
    case reset
    /// Same interval again (after ONGOING).
    case keep
    /// Double the interval (after an error).
    case backOff
}

extension EngineConfig {
    /// The base interval of a transaction: `retry_interval` if set, else `timeout_to_fail` if it is shorter
    /// than the server's RetryInterval, else RetryInterval.
    package func resetInterval(for options: TransOptions) -> Int64 {
        if options.retryInterval > 0 { return options.retryInterval }
        if options.timeoutToFail > 0 && options.timeoutToFail < retryInterval { return options.timeoutToFail }
        return retryInterval
    }

    /// The interval after `update`, given the current one.
    package func nextInterval(_ update: ScheduleUpdate, current: Int64, options: TransOptions) -> Int64 {
        switch update {
        case .reset: return resetInterval(for: options)
        case .keep: return max(current, 1)
        case .backOff:
            let doubled = Saturating.multiply(max(current, 1), 2)
            return maxRetryInterval > 0 ? min(doubled, max(maxRetryInterval, resetInterval(for: options))) : doubled
        }
    }

    /// How many times `interval` doubled from the transaction's base interval: its back-off level, DTM's retry count.
    /// Division only, so that any stored interval and option is safe.
    package func backOffLevel(interval: Int64, options: TransOptions) -> Int64 {
        var level: Int64 = 0
        var ratio = interval / max(resetInterval(for: options), 1)
        while ratio > 1 {
            ratio /= 2
            level += 1
        }
        return level
    }

    /// Whether the interval has been backed off past both the server and the transaction base.
    package func isBackedOff(interval: Int64, options: TransOptions) -> Bool {
        interval > retryInterval && interval > options.retryInterval
    }

    /// The timeout that applies to a transaction: its own, else (not for sagas) the server default; 0 = never.
    package func effectiveTimeout(for transaction: GlobalTransaction) -> Int64 {
        let own = transaction.options.timeoutToFail
        if own == 0 && transaction.transType != .saga && transaction.transType != .workflow { return timeoutToFail }
        return own
    }

    package func isTimedOut(_ transaction: GlobalTransaction, now: Timestamp) -> Bool {
        let timeout = effectiveTimeout(for: transaction)
        return timeout > 0 && now.seconds(since: transaction.createTime) >= Double(timeout)
    }

    /// Branch call timeout for a transaction, seconds: its own `request_timeout` (capped at `maxRequestTimeout`)
    /// or the server's.
    package func requestTimeout(for options: TransOptions) -> Double {
        Double(options.requestTimeout > 0 ? min(options.requestTimeout, maxRequestTimeout) : min(requestTimeout, maxRequestTimeout))
    }
}
