package import Logging

/// One processing round of one transaction: its in-memory copy, its branch rows and the effects `RoundRunner`
/// performs for a processor (call a branch, record the result, move the schedule, change the global status). It
/// is also the processor's read-only view of the round (`RoundFacts`).
///
/// A round is used by a single task. Concurrent branch calls (concurrent sagas, msg) run the branch caller in child
/// tasks; everything that writes to the store runs in the round's own task.
package final class TransactionRound: RoundFacts {
    package private(set) var transaction: GlobalTransaction
    package private(set) var branches: [Branch]
    package let context: ProcessingContext
    /// Built on first use: setting metadata copies the logger's storage, which cost ~3% of the CPU of
    /// a saga when done for every round, and most rounds log nothing at the default level.
    package private(set) lazy var logger: Logger = {
        var logger = context.logger
        logger[metadataKey: "gid"] = .string(transaction.gid)
        logger[metadataKey: "trans_type"] = .string(transaction.transType.rawValue)
        if let ids = span?.logIDs {
            logger[metadataKey: "trace_id"] = .string(ids.traceID)
            logger[metadataKey: "span_id"] = .string(ids.spanID)
        }
        return logger
    }()
    /// The round's span while tracing: parent of its branch calls' spans.
    package let span: (any TraceSpan)?
    /// A client waits for this round's outcome (wait_result): its final status is written durably. Every other write
    /// of a round is `ordered` (README, Performance: what must be durable before what).
    let answersClient: Bool
    /// The worst answer a call of this round got (nil: none worse than success), for the span's `dtm.round_result`:
    /// a machine that backs a failed call off ends its round `.ok`.
    package private(set) var worstAnswer: BranchOutcome?
    /// The headers each branch call carries: `ext_data`'s, then `branch_headers` (the later wins), reserved names
    /// dropped.
    private let callHeaders: [String: String]
    /// When the schedule was last pushed forward (DTM's `lastTouched`): also the lease renewal.
    private var lastTouched: Timestamp
    /// Branch statuses recorded in memory and not yet stored. They go to the store with the round's next write
    /// of the global row (a status change or a schedule move) in the same atomic write, or, with
    /// `updateBranchSync`, before the round calls or waits on another branch (`settle`), or at the round's end.
    /// A two-step saga thus makes two writes after submit instead of three (one without `updateBranchSync`).
    private var pendingUpdates: [BranchStatusUpdate] = []

    /// `custom_data`, decoded once here (the boundary), for the machine.
    package let customData: RoundCustomData
    /// The time the machine decides on: read once per decision (`startDecision`), so that one event sees one time.
    package private(set) var now: Timestamp

    /// While tracing, the round's span is started here: its parent is `parent` (the API call that started the round),
    /// else the context stored with the transaction.
    package init(
        transaction: GlobalTransaction, branches: [Branch], context: ProcessingContext, reason: RoundReason = .submit, parent: TraceHeaders? = nil,
        answersClient: Bool = false
    ) {
        self.answersClient = answersClient
        self.transaction = transaction
        self.branches = branches
        self.context = context
        var stored: [String: String] = [:]
        var unreadableExtData: String?
        if !transaction.extData.isEmpty {
            do { stored = try TransactionExtData.headers(of: transaction.extData, coding: context.coding) } catch {
                unreadableExtData = String("\(error)".prefix(200))
            }
        }
        // Most transactions store no headers: their branch_headers are used as they are, not copied.
        let headers = stored.isEmpty ? transaction.options.branchHeaders : stored.merging(transaction.options.branchHeaders) { _, later in later }
        self.callHeaders = Self.sendableHeaders(headers)
        self.span = context.tracer.map { tracer in
            tracer.span(
                "dtm.round", kind: .internal, parent: parent ?? TransactionExtData.trace(in: stored),
                [
                    "dtm.gid": .string(transaction.gid), "dtm.trans_type": .string(transaction.transType.rawValue),
                    "dtm.status_before": .string(transaction.status.rawValue), "dtm.round_reason": .string(reason.rawValue),
                ])
        }
        let at = context.clock.now()
        self.lastTouched = at
        self.now = at
        self.customData = RoundCustomData.decode(transaction.customData, for: transaction.transType, coding: context.coding)
        if let unreadableExtData {
            // Only pass-through headers live there: the transaction is processed without them rather than not at all.
            logger.warning("ext_data cannot be read; branch calls go without its headers", metadata: ["error": .string(unreadableExtData)])
        }
    }

    package var config: EngineConfig { context.config }
    package var lastScheduleMove: Timestamp { lastTouched }
    /// The time the round's writes carry (not a fact the machine decides on).
    private var clockNow: Timestamp { context.clock.now() }

    /// Reads the clock for the machine's next decision.
    func startDecision() { now = clockNow }

    /// The call for branch row `index`.
    package func branchCall(index: Int) -> BranchCall {
        let b = branches[index]
        return makeCall(url: b.url, branchID: b.branchID, op: b.op, payload: b.binData)
    }

    package func makeCall(url: String, branchID: String, op: String, payload: [UInt8]) -> BranchCall {
        BranchCall(
            url: url, gid: transaction.gid, transType: transaction.transType, transProtocol: transaction.transProtocol,
            branchID: branchID, op: op, payload: payload, headers: callHeaders,
            timeout: config.requestTimeout(for: transaction.options))
    }

    /// The branch headers a call may carry: reserved names (`Limits.isReservedHeader`) are refused at submit, and
    /// dropped here from rows stored before that check or by another program.
    static func sendableHeaders(_ headers: [String: String]) -> [String: String] {
        guard !headers.isEmpty, headers.keys.contains(where: Limits.isReservedHeader) else { return headers }
        return headers.filter { !Limits.isReservedHeader($0.key) }
    }

    /// Makes sure this round holds the transaction's lease (the stored `next_cron_time` with `owner`) until a call
    /// started now has timed out, plus `leaseMargin`; renews it by compare-and-set on the owner when it would not.
    /// Throws `LeaseLost` when another coordinator holds the transaction: the round must start no more calls.
    /// Calls are bounded by their timeout, so a lease taken when a call starts covers it to its end, and another
    /// coordinator's claim (due rows only) cannot reach the transaction while the call runs.
    package func holdLease() async throws {
        let at = clockNow
        let needed = at.adding(seconds: config.requestTimeout(for: transaction.options) + config.leaseMargin)
        if let until = transaction.nextCronTime, until >= needed, transaction.owner == context.leaseOwner || transaction.owner.isEmpty {
            return
        }
        guard try await context.store.renewLease(gid: transaction.gid, owner: context.leaseOwner, until: needed, now: at) else {
            throw LeaseLost(gid: transaction.gid)
        }
        transaction.owner = context.leaseOwner
        transaction.nextCronTime = needed
    }

    /// Calls a URL that is not a stored branch — the msg check-back or the workflow resume — as branch `00`.
    /// Nothing is recorded; the caller decides what the answer means.
    package func callCheckBack(url: String, op: String, payload: [UInt8]) async throws -> BranchCallResult {
        try await holdLease()
        let result = await BranchCallTrace.call(context.caller, makeCall(url: url, branchID: "00", op: op, payload: payload), round: span)
        logger.debug("check-back", metadata: ["url": .string(url), "op": .string(op), "result": .string("\(result)")])
        if case .error(let text) = result {
            worstAnswer = .error(text)
            await context.recordError(gid: transaction.gid, "check-back \(url): \(text)")
        }
        return result
    }

    /// Carries out the machine's verdict on the answer of the call to branch row `index`: the row's new status (stored
    /// with the round's next write, guarded by the global status), the schedule move, and for an error its log line,
    /// the attention view's record and the alert check. Returns the outcome the machine decided on.
    package func record(_ verdict: BranchVerdict, index: Int) async throws -> BranchOutcome {
        let branch = branches[index]
        // A call that ended after the lease did (a clock jump, an operator's resetNextCronTime) may have let another
        // coordinator claim the transaction: nothing is written for it unless the lease is still, or again, ours.
        if let until = transaction.nextCronTime, until < clockNow { try await holdLease() }
        if let newStatus = verdict.status {
            let at = clockNow
            pendingUpdates.append(BranchStatusUpdate(branchID: branch.branchID, op: branch.op, status: newStatus, finishTime: at))
            branches[index].status = newStatus
            branches[index].finishTime = at
            branches[index].updateTime = at
        }
        context.observer?.branchFinished(transType: transaction.transType, op: branch.op, succeeded: verdict.outcome == .succeeded)
        switch verdict.outcome {
        case .error: worstAnswer = verdict.outcome
        case .ongoing: if worstAnswer == nil { worstAnswer = verdict.outcome }
        case .succeeded, .failed: break
        }
        switch verdict.outcome {
        case .succeeded, .failed:
            if context.logger.logLevel <= .debug {
                logger.debug("branch \(verdict.status?.rawValue ?? "")", metadata: Self.metadata(branch, ["url": .string(branch.url)]))
            }
        case .ongoing(let text):
            logger.info("branch ongoing", metadata: Self.metadata(branch, ["url": .string(branch.url), "answer": .string(text)]))
        case .error(let text):
            logger.warning("branch error, will retry", metadata: Self.metadata(branch, ["url": .string(branch.url), "error": .string(text)]))
        }
        if let schedule = verdict.schedule { try await touch(schedule) }
        if case .error(let text) = verdict.outcome {
            await context.recordError(gid: transaction.gid, "branch \(branch.branchID)/\(branch.op) \(branch.url): \(text)")
            await alertIfNeeded(branchURL: branch.url, error: text)
        }
        return verdict.outcome
    }

    /// Moves the schedule (spec §9.3); a no-op in the store if the status changed meanwhile.
    package func touch(_ update: ScheduleUpdate) async throws {
        let at = clockNow
        let interval = config.nextInterval(update, current: transaction.nextCronInterval, options: transaction.options)
        let next = at.adding(seconds: Double(interval))
        try await context.store.touchCronTime(
            gid: transaction.gid, requiring: transaction.status, interval: interval, nextCronTime: next,
            branchUpdates: takePendingUpdates(), now: at, durability: .ordered)
        transaction.nextCronInterval = interval
        transaction.nextCronTime = next
        lastTouched = at
        if update == .backOff, let span { span.event("dtm.back_off", ["dtm.next_cron_interval": .int(interval)]) }
    }

    /// Postpones the next round to `now + seconds` without changing the interval (msg `delay`).
    package func postpone(seconds: Int64) async throws {
        let at = clockNow
        let next = at.adding(seconds: Double(seconds))
        try await context.store.touchCronTime(
            gid: transaction.gid, requiring: transaction.status, interval: transaction.nextCronInterval,
            nextCronTime: next, branchUpdates: takePendingUpdates(), now: at, durability: .ordered)
        transaction.nextCronTime = next
    }

    /// Compare-and-set of the global status; fills finish/rollback time for final states.
    package func changeStatus(to status: GlobalStatus, rollbackReason: String? = nil, result: String? = nil) async throws {
        let at = clockNow
        var change = StatusChange(rollbackReason: rollbackReason, result: result)
        if status == .succeed { change.finishTime = at }
        if status == .failed { change.rollbackTime = at }
        try await context.store.changeStatus(
            gid: transaction.gid, from: transaction.status, to: status, change: change, branchUpdates: takePendingUpdates(), now: at,
            durability: answersClient && status.isFinished ? .durable : .ordered)
        if context.logger.logLevel <= .info {
            logger.info(
                "status \(transaction.status.rawValue) -> \(status.rawValue)",
                metadata: rollbackReason.map { ["rollback_reason": .string($0)] })
        }
        span?.event("dtm.status_changed", ["dtm.status_from": .string(transaction.status.rawValue), "dtm.status_to": .string(status.rawValue)])
        transaction.status = status
        transaction.updateTime = at
        if let f = change.finishTime { transaction.finishTime = f }
        if let r = change.rollbackTime { transaction.rollbackTime = r }
        if let r = rollbackReason { transaction.rollbackReason = r }
        if let r = result { transaction.result = r }
    }

    /// To be called before the round starts a branch call or waits for one in flight: with `updateBranchSync`
    /// (DTM's default) the statuses recorded so far are stored first, as DTM stores each one at once.
    package func settle() async throws {
        if config.updateBranchSync { try await storePendingUpdates() }
    }

    /// Stores the branch statuses recorded since the round's last write (at the end of a round).
    package func storePendingUpdates() async throws {
        guard !pendingUpdates.isEmpty else { return }
        try await context.store.updateBranches(
            gid: transaction.gid, requiring: transaction.status, updates: takePendingUpdates(), now: clockNow, durability: .ordered)
    }

    private func takePendingUpdates() -> [BranchStatusUpdate] {
        defer { pendingUpdates.removeAll() }
        return pendingUpdates
    }

    /// A branch's log metadata (the round's logger already carries gid and trans_type).
    private static func metadata(_ branch: Branch, _ extra: Logger.Metadata) -> Logger.Metadata {
        extra.merging(["branch_id": .string(branch.branchID), "op": .string(branch.op)]) { a, _ in a }
    }

    private func alertIfNeeded(branchURL: String, error: String) async {
        guard let alerts = context.alerts else { return }
        let level = config.backOffLevel(interval: transaction.nextCronInterval, options: transaction.options)
        guard level >= config.alertRetryLimit else { return }
        await alerts.alert(gid: transaction.gid, status: transaction.status, branchURL: branchURL, error: error, retryCount: level)
    }
}

/// Another coordinator holds the transaction's lease (it claimed the transaction after this round's lease ran out,
/// or the transaction ended): the round stops without calling or scheduling anything more.
package struct LeaseLost: Error, CustomStringConvertible {
    package let gid: String
    package var description: String { "the lease of \(gid) is held by another coordinator; this round stops" }
}
