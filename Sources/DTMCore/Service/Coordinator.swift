import Logging
import Synchronization

/// The state engine behind every listener (spec §1): each API call from JSON/HTTP or gRPC becomes one of these
/// service functions; the cron loop calls the same processors.
package final class Coordinator: Sendable {
    package let context: ProcessingContext
    private let processors: [TransType: any ModeProcessor]
    /// Every check of client input (`TransactionValidator`).
    let validator: TransactionValidator
    /// Gids with a round running in this process: a second round of the same transaction is not started here.
    private let running = Mutex<Set<String>>([])
    private let backgroundRounds = Atomic<Int>(0)
    let cronWake = WakeSignal()

    package init(context: ProcessingContext, processors: [TransType: any ModeProcessor]? = nil) {
        self.context = context
        self.processors = processors ?? Coordinator.defaultProcessors
        self.validator = TransactionValidator(config: context.config, coding: context.coding)
    }

    /// The processors of the modes implemented so far.
    package static let defaultProcessors: [TransType: any ModeProcessor] = [
        .saga: SagaProcessor(), .tcc: TCCProcessor(), .xa: XAProcessor(), .msg: MsgProcessor(), .workflow: WorkflowProcessor(),
    ]

    var config: EngineConfig { context.config }
    var store: any TransactionStore { context.store }
    var now: Timestamp { context.clock.now() }

    // MARK: - API

    package func newGid() -> String { GidGenerator.make() }

    /// `prepare` (spec §4.3).
    package func prepare(_ request: TransactionRequest) async throws {
        let (transaction, branches) = try await buildTransaction(request, status: .prepared)
        if let stored = try await store.saveNew(transaction, branches: branches) {
            guard stored.status == .prepared else {
                throw DTMError.failure("current status '\(stored.status.rawValue)', cannot prepare.")
            }
            return
        }
        context.logger.info("prepared", metadata: ["gid": .string(request.gid), "trans_type": .string(request.transType)])
    }

    /// `submit` (spec §4.4).
    package func submit(_ request: TransactionRequest) async throws {
        let type = try validator.transType(request.transType)
        if type == .workflow { return try await submitWorkflow(request) }
        let (transaction, branches) = try await buildTransaction(request, status: .submitted)
        guard let stored = try await store.saveNew(transaction, branches: branches) else {
            context.logger.info("submitted", metadata: ["gid": .string(request.gid), "trans_type": .string(request.transType)])
            return try await process(transaction, branches: branches, waitResult: request.options.waitResult, isSubmit: true, trace: request.trace)
        }
        var current = stored
        switch stored.status {
        case .prepared:
            try await store.changeStatus(gid: stored.gid, from: .prepared, to: .submitted, change: StatusChange(), now: now)
            current.status = .submitted
        case .submitted:
            break  // idempotent re-submit: process the stored branches again
        default:
            throw DTMError.failure("current status '\(stored.status.rawValue)', cannot sumbmit.")
        }
        let stored_branches = try await store.branches(gid: stored.gid)
        try await process(current, branches: stored_branches, waitResult: request.options.waitResult, isSubmit: true, trace: request.trace)
    }

    private func submitWorkflow(_ request: TransactionRequest) async throws {
        try validator.checkGid(request.gid)
        guard let raw = request.reqExtra["status"], let status = GlobalStatus(rawValue: raw),
            status == .succeed || status == .failed
        else {
            throw DTMError.invalidArgument("workflow submit needs req_extra.status 'succeed' or 'failed'")
        }
        let at = now
        var change = StatusChange()
        if status == .succeed { change.finishTime = at } else { change.rollbackTime = at }
        if let r = request.reqExtra["rollback_reason"], !r.isEmpty { change.rollbackReason = r }
        if let r = request.reqExtra["result"], !r.isEmpty { change.result = r }
        try await store.changeStatus(gid: request.gid, from: .prepared, to: status, change: change, now: at)
    }

    /// `abort` (spec §4.5).
    package func abort(_ request: TransactionRequest) async throws {
        try validator.checkGid(request.gid)
        guard let stored = try await store.transaction(gid: request.gid) else {
            throw DTMError.other("no TransGlobal with gid: \(request.gid) found")
        }
        if stored.transType == .msg && stored.status == .prepared {
            try await store.changeStatus(gid: stored.gid, from: .prepared, to: .failed, change: StatusChange(rollbackTime: now), now: now)
            return
        }
        guard request.transType == TransType.xa.rawValue || request.transType == TransType.tcc.rawValue,
            stored.status == .prepared || stored.status == .aborting
        else {
            throw DTMError.failure(
                "trans type: '\(stored.transType.rawValue)' current status '\(stored.status.rawValue)', cannot abort.")
        }
        let reason = request.rollbackReason.isEmpty ? nil : String(request.rollbackReason.prefix(config.limits.maxRollbackReasonLength))
        try await store.changeStatus(gid: stored.gid, from: stored.status, to: .aborting, change: StatusChange(rollbackReason: reason), now: now)
        var current = stored
        current.status = .aborting
        if let reason { current.rollbackReason = reason }
        let branches = try await store.branches(gid: stored.gid)
        try await process(current, branches: branches, waitResult: stored.options.waitResult, isSubmit: false, trace: request.trace)
    }

    /// `registerBranch` (spec §4.7).
    package func registerBranch(_ registration: BranchRegistration) async throws {
        let type = try validator.check(registration)
        let id = registration.branchID
        let at = now
        let gid = registration.gid
        let data = registration.data
        let payload = registration.busiPayload
        let rows: [Branch]
        switch type {
        case .tcc:
            rows = [
                Branch(gid: gid, url: data["cancel"] ?? "", binData: payload, branchID: id, op: BranchOp.cancel, createTime: at),
                Branch(gid: gid, url: data["confirm"] ?? "", binData: payload, branchID: id, op: BranchOp.confirm, createTime: at),
            ]
        case .xa:
            let url = data["url"] ?? ""
            rows = [
                Branch(gid: gid, url: url, binData: payload, branchID: id, op: BranchOp.rollback, createTime: at),
                Branch(gid: gid, url: url, binData: payload, branchID: id, op: BranchOp.commit, createTime: at),
            ]
        case .workflow:
            // The validator checked both.
            let status = BranchStatus(rawValue: data["status"] ?? "") ?? .succeed
            var row = Branch(gid: gid, url: "", binData: payload, branchID: id, op: data["op"] ?? "", status: status, createTime: at)
            row.finishTime = at
            rows = [row]
        case .saga, .msg:
            rows = []  // refused by the validator
        }
        try validator.check(rows: rows, existing: try await store.branches(gid: gid).count, gid: gid)
        do {
            try await store.insertBranches(gid: gid, requiring: .prepared, branches: rows)
        } catch DTMError.storageNotFound {
            throw DTMError.failure("no trans with gid: \(gid) status: prepared found")
        }
    }

    /// `prepareWorkflow` (spec §4.8): the new or stored transaction and its progress rows.
    package func prepareWorkflow(_ request: TransactionRequest) async throws -> (GlobalTransaction, [Branch]) {
        let (transaction, _) = try makeTransaction(request, status: .prepared)
        guard let stored = try await store.saveNew(transaction, branches: []) else { return (transaction, []) }
        return (stored, try await store.branches(gid: stored.gid))
    }

    /// `forceStop` (spec §4.6): `failed` without compensation.
    package func forceStop(gid: String) async throws {
        try validator.checkGid(gid)
        guard let stored = try await store.transaction(gid: gid) else {
            throw DTMError.other("no TransGlobal with gid: \(gid) found")
        }
        if stored.status.isFinished {
            throw DTMError.failure("global transaction force stop error. status: \(stored.status.rawValue). error:")
        }
        try await store.changeStatus(gid: gid, from: stored.status, to: .failed, change: StatusChange(rollbackTime: now), now: now)
        context.logger.info("force stopped", metadata: ["gid": .string(gid), "from": .string(stored.status.rawValue)])
    }

    /// `query` (spec §4.9).
    package func query(gid: String) async throws -> (GlobalTransaction?, [Branch]) {
        guard let t = try await store.transaction(gid: gid) else { return (nil, []) }
        return (t, try await store.branches(gid: gid))
    }

    package func all(position: Int64?, limit: Int, filter: TransactionFilter) async throws -> (transactions: [GlobalTransaction], nextPosition: Int64?) {
        try await store.scan(position: position, limit: limit, filter: filter)
    }

    /// `resetCronTime` (spec §4.11); `timeout` defaults to 3 × TimeoutToFail.
    package func resetCronTime(timeout: Int64?, limit: Int?) async throws -> (count: Int, hasRemaining: Bool) {
        let at = now
        let result = try await store.resetCronTime(
            laterThan: at.adding(seconds: Double(timeout ?? Saturating.multiply(3, config.timeoutToFail))), limit: limit ?? 100, now: at)
        if result.count > 0 { cronWake.signal() }
        return result
    }

    /// `resetNextCronTime` (spec §4.12): also wakes the cron loop so the transaction is processed at once.
    package func resetNextCronTime(gid: String) async throws {
        try validator.checkGid(gid)
        do {
            try await store.resetNextCronTime(gid: gid, now: now)
        } catch DTMError.storageNotFound {
            throw DTMError.other("no TransGlobal with gid: \(gid) found")
        }
        cronWake.signal()
    }

    // MARK: - Processing

    /// Runs one round now (wait_result) or in the background (spec §8.1 `Process`, §8.8).
    /// `trace`: the API call's span context, parent of the round's span (else the stored one is).
    func process(_ transaction: GlobalTransaction, branches: [Branch], waitResult: Bool, isSubmit: Bool, trace: TraceHeaders?) async throws {
        guard waitResult else {
            // Beyond the in-flight bound the transaction is left to the cron loop: it is already durable.
            guard backgroundRounds.add(1, ordering: .relaxed).newValue <= config.maxInflightRounds else {
                backgroundRounds.subtract(1, ordering: .relaxed)
                return
            }
            Task(executorPreference: context.roundExecutor()) {
                defer { self.backgroundRounds.subtract(1, ordering: .relaxed) }
                _ = await self.runRoundLogged(transaction, branches: branches, reason: .submit, parent: trace)
            }
            return
        }
        let (result, after) = try await runRound(transaction, branches: branches, reason: .submit, parent: trace, answersClient: true)
        switch result {
        case .ongoing(let m): throw DTMError.ongoing(m)
        case .error(let m): throw DTMError.other(m)
        case .ok: break
        }
        guard isSubmit else { return }
        // A round of the same gid already running here means this one did not run: judge by what is stored.
        let current: GlobalTransaction? = if let after { after } else { try await store.transaction(gid: transaction.gid) }
        if let current, current.status != .succeed {
            if !current.rollbackReason.isEmpty { throw DTMError.failure(current.rollbackReason) }
            throw DTMError.failure("wait result not return success:")
        }
    }

    /// One round, with the in-process guard; returns the round's result and the transaction after it (nil when
    /// another round of the same gid is already running here). While tracing, the round has a span whose parent is
    /// `parent`, else the context stored with the transaction.
    func runRound(
        _ transaction: GlobalTransaction, branches: [Branch], reason: RoundReason, parent: TraceHeaders? = nil, answersClient: Bool = false
    ) async throws -> (RoundResult, GlobalTransaction?) {
        guard let processor = processors[transaction.transType] else {
            context.logger.debug(
                "no processor for this transaction type yet",
                metadata: ["gid": .string(transaction.gid), "trans_type": .string(transaction.transType.rawValue)])
            return (.ok, transaction)
        }
        let inserted = running.withLock { $0.insert(transaction.gid).inserted }
        guard inserted else { return (.ok, nil) }
        defer { _ = running.withLock { $0.remove(transaction.gid) } }
        let round = TransactionRound(
            transaction: transaction, branches: branches, context: context, reason: reason, parent: parent, answersClient: answersClient)
        let span = round.span
        let result: RoundResult
        do {
            result = try await RoundRunner.run(processor, round)
            try await round.storePendingUpdates()
        } catch {
            context.observer?.roundFinished(transType: transaction.transType, failed: true, secondsSinceCreate: now.seconds(since: transaction.createTime))
            await context.recordError(gid: transaction.gid, "\(error)")
            if let span {
                span.set("dtm.status_after", .string(round.transaction.status.rawValue))
                span.fail(String("\(error)".prefix(512)))
            }
            throw error
        }
        if let span { Self.end(span, round: round, result: result) }
        if case .error(let message) = result { await context.recordError(gid: transaction.gid, message) }
        if let observer = context.observer {
            let failed: Bool
            if case .error = result { failed = true } else { failed = false }
            observer.roundFinished(transType: transaction.transType, failed: failed, secondsSinceCreate: now.seconds(since: transaction.createTime))
        }
        return (result, round.transaction)
    }

    private static func end(_ span: any TraceSpan, round: TransactionRound, result: RoundResult) {
        span.set("dtm.status_after", .string(round.transaction.status.rawValue))
        // A machine ends a round `.ok` once it has backed a failed call off: the calls' answers say more.
        switch (result, round.worstAnswer) {
        case (.error(let message), _), (.ok, .error(let message)?), (.ongoing, .error(let message)?):
            span.set("dtm.round_result", .string("error"))
            span.fail(String(message.prefix(512)))
        case (.ongoing, _), (.ok, .ongoing?):
            span.set("dtm.round_result", .string("ongoing"))
            span.end()
        case (.ok, _):
            span.set("dtm.round_result", .string("ok"))
            span.succeed()
        }
    }

    /// A background or cron round: errors are logged, never thrown.
    func runRoundLogged(_ transaction: GlobalTransaction, branches: [Branch], reason: RoundReason, parent: TraceHeaders? = nil) async -> RoundResult {
        do {
            let (result, _) = try await runRound(transaction, branches: branches, reason: reason, parent: parent)
            if case .error(let m) = result {
                context.logger.warning("round ended with an error", metadata: ["gid": .string(transaction.gid), "error": .string(m)])
            }
            return result
        } catch {
            context.logger.error("round failed", metadata: ["gid": .string(transaction.gid), "error": .string("\(error)")])
            return .error("\(error)")
        }
    }

    /// True while a round of `gid` runs in this process.
    func isRunningHere(_ gid: String) -> Bool { running.withLock { $0.contains(gid) } }

    /// Rounds started by submit/abort that are still running (for graceful shutdown).
    package var backgroundRoundCount: Int { backgroundRounds.load(ordering: .relaxed) }

    // MARK: - Building a transaction from a request

    /// `makeTransaction`, with the topics of a msg resolved from the store first.
    func buildTransaction(_ request: TransactionRequest, status: GlobalStatus) async throws -> (GlobalTransaction, [Branch]) {
        if request.transType == TransType.msg.rawValue && request.steps.contains(where: { $0.action.hasPrefix("topic://") }) {
            try validator.checkGid(request.gid)
            return try makeTransaction(request, status: status, msgURLs: try await msgURLs(request))
        }
        return try makeTransaction(request, status: status)
    }

    /// Validates a request (`TransactionValidator`) and builds the transaction and its branch rows (spec §8.1
    /// "save new"). `msgURLs` are the resolved URLs of each msg step (topics expanded); nil means each step's action.
    func makeTransaction(_ request: TransactionRequest, status: GlobalStatus, msgURLs: [[String]]? = nil) throws(DTMError) -> (GlobalTransaction, [Branch]) {
        let type = try validator.check(request, status: status, msgURLs: msgURLs)
        let at = now
        var t = GlobalTransaction(gid: request.gid, transType: type, status: status, createTime: at)
        t.queryPrepared = request.queryPrepared
        t.transProtocol = request.transProtocol.isEmpty ? TransProtocol.http : request.transProtocol
        t.options = request.options
        t.options.retryCount = 0
        t.customData = request.customData
        t.nextCronInterval = config.resetInterval(for: t.options)
        t.nextCronTime = at.adding(seconds: Double(t.nextCronInterval))
        if let trace = request.trace, let text = try? context.coding.encode(TransactionExtData(trace: trace)) { t.extData = text }

        // Payload of step i: payloads[i], else the legacy steps[i].data, else empty (spec §17.9).
        let payloads: [[UInt8]] = request.steps.indices.map { i in
            if !request.payloads.isEmpty { return request.payloads[i] }
            return Array((request.steps[i].data ?? "").utf8)
        }
        switch type {
        case .saga:
            return (t, BranchLayout.saga(request, payloads: payloads, now: at))
        case .msg:
            let urls = msgURLs ?? request.steps.map { [$0.action] }
            return (t, BranchLayout.msg(gid: request.gid, urls: urls, payloads: payloads, now: at))
        case .tcc, .xa, .workflow:
            return (t, [])
        }
    }
}
