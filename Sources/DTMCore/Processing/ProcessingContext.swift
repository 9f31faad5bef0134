package import Logging

/// Receives an alert when a branch keeps failing (spec §9.7: AlertRetryLimit / AlertWebHook).
package protocol AlertSink: Sendable {
    func alert(gid: String, status: GlobalStatus, branchURL: String, error: String, retryCount: Int64) async
}

/// Everything a processing round needs from the outside world.
package struct ProcessingContext: Sendable {
    package var store: any TransactionStore
    package var caller: any BranchCaller
    package var clock: any CoordinatorClock
    package var coding: any TextCoding
    package var config: EngineConfig
    package var logger: Logger
    package var alerts: (any AlertSink)?
    package var observer: (any ProcessingObserver)?
    /// Makes the spans of API calls, rounds and branch calls; nil while tracing is off.
    package var tracer: (any TransactionTracer)?
    /// The executor a round started in the background by the current request should prefer (the adapters' hint:
    /// the request's event loop, so its branch calls need no thread hop); nil: the global concurrent executor.
    package var roundExecutor: @Sendable () -> (any TaskExecutor)?
    /// This process's name in the `owner` column: the cron loop claims with it and rounds renew their lease with it
    /// (one per process, so a claim of a transaction whose round runs here does not take the lease from that round).
    package var leaseOwner: String

    package init(
        store: any TransactionStore, caller: any BranchCaller, clock: any CoordinatorClock,
        coding: any TextCoding, config: EngineConfig, logger: Logger, alerts: (any AlertSink)? = nil,
        observer: (any ProcessingObserver)? = nil, tracer: (any TransactionTracer)? = nil,
        roundExecutor: @escaping @Sendable () -> (any TaskExecutor)? = { nil },
        leaseOwner: String = GidGenerator.owner()
    ) {
        self.leaseOwner = leaseOwner
        self.store = store
        self.caller = caller
        self.clock = clock
        self.coding = coding
        self.config = config
        self.logger = logger
        self.alerts = alerts
        self.observer = observer
        self.tracer = tracer
        self.roundExecutor = roundExecutor
    }
}

/// What a round reports (spec §8.8): it finished its work for now, a branch said ONGOING, or a branch failed
/// in a way that is retried later.
extension ProcessingContext {
    /// Keeps the error of a transaction's failed attempt for the attention view; a store that cannot keep it only
    /// costs the view that, so the failure is logged, not thrown.
    func recordError(gid: String, _ message: String) async {
        do {
            try await store.recordError(gid: gid, message: String(message.prefix(1024)))
        } catch {
            logger.warning("could not record a round's error", metadata: ["gid": .string(gid), "error": .string("\(error)")])
        }
    }
}

package enum RoundResult: Sendable, Equatable {
    case ok
    case ongoing(String)
    case error(String)
}

/// The outcome of one branch call after it has been recorded.
package enum BranchOutcome: Sendable, Equatable {
    case succeeded
    /// A saga action answered FAILURE; the text is the saga's failure reason.
    case failed(String)
    case ongoing(String)
    case error(String)
}
