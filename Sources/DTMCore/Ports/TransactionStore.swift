/// Fields written together with a status change (spec §11.1 `ChangeGlobalStatus`).
package struct StatusChange: Sendable, Equatable {
    package var finishTime: Timestamp?
    package var rollbackTime: Timestamp?
    package var rollbackReason: String?
    package var result: String?

    package init(finishTime: Timestamp? = nil, rollbackTime: Timestamp? = nil, rollbackReason: String? = nil, result: String? = nil) {
        self.finishTime = finishTime
        self.rollbackTime = rollbackTime
        self.rollbackReason = rollbackReason
        self.result = result
    }
}

/// A new status for one existing branch row, identified by its unique key (gid, branch_id, op).
package struct BranchStatusUpdate: Sendable, Equatable {
    package var branchID: String
    package var op: String
    package var status: BranchStatus
    package var finishTime: Timestamp

    package init(branchID: String, op: String, status: BranchStatus, finishTime: Timestamp) {
        self.branchID = branchID
        self.op = op
        self.status = status
        self.finishTime = finishTime
    }
}

/// A stored row the model cannot represent (an unknown trans_type or status, written by another program). Stores
/// leave such rows out of listings and set them aside in `claimDue`, logging this.
package struct UnreadableRow: Error, CustomStringConvertible {
    package let gid: String
    package let problem: String
    package init(gid: String, problem: String) {
        self.gid = gid
        self.problem = problem
    }
    package var description: String { "stored row of gid \(gid) cannot be read: \(problem)" }
}

/// Unfinished transactions by status and the cron loop's backlog (the console's counters). Each count stops at
/// `cap`, so that a reading costs at most that many index entries however large the backlog.
package struct Backlog: Sendable, Equatable {
    package var prepared = 0
    package var submitted = 0
    package var aborting = 0
    /// Unfinished, with `next_cron_time` at or before now.
    package var due = 0
    /// Due for longer than the given lateness: the cron loop is behind.
    package var overdue = 0
    package init() {}
}

/// Filter of `all` (spec §4.10).
package struct TransactionFilter: Sendable, Equatable {
    package var status: String = ""
    package var transType: String = ""
    package var createTimeStart: Timestamp?
    package var createTimeEnd: Timestamp?
    package init() {}
}

/// How soon a round's write must reach the disk (README, Performance: what must be durable before what).
package enum WriteDurability: Sendable, Equatable {
    /// On disk before the method returns: what an answer to a client relies on.
    case durable
    /// Applied in order with every other write and kept when this process crashes, but on disk (fsync) only with the
    /// next durable write: what only the round itself relies on (a branch's status before the next call, a schedule
    /// move, an outcome no client waits for). A power loss may lose it; the transaction is then processed again
    /// from its last durable state, as the branches' idempotence allows.
    case ordered
}

/// Durable storage of transactions, branches and KV records.
///
/// Every method is atomic. Status changes are compare-and-set on the *stored* status, and branch writes are
/// guarded by the stored global status, so that several coordinators may share one store (a PostgreSQL store
/// implements the same contract with row locks). A method that returns has made its change durable, unless it was
/// asked for an `ordered` write: that is visible at once and durable with the next durable write.
package protocol TransactionStore: Sendable {
    /// Inserts the transaction and its branch rows if the gid is unused and returns nil; otherwise changes
    /// nothing and returns the stored transaction.
    func saveNew(_ transaction: GlobalTransaction, branches: [Branch]) async throws -> GlobalTransaction?

    func transaction(gid: String) async throws -> GlobalTransaction?

    /// The branch rows of `gid` in insertion order.
    func branches(gid: String) async throws -> [Branch]

    /// Sets `status = to` (with `update_time = now` and the given fields) only if the stored status is `from`,
    /// and records `branchUpdates` in the same atomic write; otherwise throws `DTMError.storageNotFound` and
    /// changes nothing.
    func changeStatus(
        gid: String, from: GlobalStatus, to: GlobalStatus, change: StatusChange, branchUpdates: [BranchStatusUpdate], now: Timestamp,
        durability: WriteDurability
    ) async throws

    /// Inserts branch rows (registerBranch) only if the stored global status is `requiring`; otherwise throws
    /// `storageNotFound`. A duplicate (gid, branch_id, op) throws `uniqueConflict` and inserts nothing.
    func insertBranches(gid: String, requiring: GlobalStatus, branches: [Branch]) async throws

    /// Records new branch statuses only if the stored global status is `requiring`; otherwise throws
    /// `storageNotFound` and changes nothing.
    func updateBranches(gid: String, requiring: GlobalStatus, updates: [BranchStatusUpdate], now: Timestamp, durability: WriteDurability) async throws

    /// Sets the schedule if the stored status is still `requiring`, and records `branchUpdates` in the same
    /// atomic write. If the status moved, nothing changes: silently without branch updates (as DTM's SQL stores),
    /// else with `storageNotFound` (as `updateBranches`).
    func touchCronTime(
        gid: String, requiring: GlobalStatus, interval: Int64, nextCronTime: Timestamp, branchUpdates: [BranchStatusUpdate],
        now: Timestamp, durability: WriteDurability
    ) async throws

    /// Claims up to `limit` unfinished transactions whose `next_cron_time` is at or before `dueBefore`: sets
    /// `next_cron_time = leaseUntil`, `owner`, `update_time = now` and returns them (spec §9.2).
    func claimDue(dueBefore: Timestamp, leaseUntil: Timestamp, owner: String, limit: Int, now: Timestamp) async throws -> [GlobalTransaction]

    /// Holds or renews the lease of a transaction whose round runs here: sets `next_cron_time = until`, `owner`
    /// and `update_time = now` if the transaction is unfinished and its lease is `owner`'s, unclaimed (empty
    /// owner) or expired (`next_cron_time` at or before `now`). Returns false, changing nothing, when another
    /// coordinator holds it (or the transaction is finished or gone).
    func renewLease(gid: String, owner: String, until: Timestamp, now: Timestamp) async throws -> Bool

    /// For up to `limit` unfinished transactions scheduled after `laterThan`, sets `next_cron_time = now`.
    /// Returns how many were changed and whether more remain (spec §4.11).
    func resetCronTime(laterThan: Timestamp, limit: Int, now: Timestamp) async throws -> (count: Int, hasRemaining: Bool)

    /// Sets `next_cron_time = update_time = now` for one transaction, any status; `storageNotFound` if missing.
    func resetNextCronTime(gid: String, now: Timestamp) async throws

    /// A page of transactions, newest first, with ids below `position` (spec §4.10).
    func scan(position: Int64?, limit: Int, filter: TransactionFilter) async throws -> (transactions: [GlobalTransaction], nextPosition: Int64?)

    /// Counts unfinished transactions by status (each count at most `cap`), those due at `now` and those due before
    /// `overdueBefore` (both at most `cap`).
    func backlog(now: Timestamp, overdueBefore: Timestamp, cap: Int) async throws -> Backlog

    /// Keeps the error of a transaction's last failed round (`last_error`, ours), for the console's attention view.
    /// A missing gid is not an error.
    func recordError(gid: String, message: String) async throws

    /// Up to `limit` unfinished transactions, oldest (by creation) first, each with its last recorded error.
    func unfinishedOldest(limit: Int) async throws -> [(transaction: GlobalTransaction, lastError: String)]

    /// Deletes up to `limit` finished transactions (succeed or failed) last updated before `before`, with their
    /// branches, oldest first; returns how many transactions went (retention, `Store.FinishedDataExpire`).
    func deleteFinished(before: Timestamp, limit: Int) async throws -> Int

    func scanKV(cat: String, position: Int64?, limit: Int) async throws -> (records: [KVRecord], nextPosition: Int64?)
    /// Records matching `cat` and `key`; an empty argument matches everything.
    func findKV(cat: String, key: String) async throws -> [KVRecord]
    /// Inserts with version 1; an existing (cat, key) throws `uniqueConflict`.
    func createKV(_ record: KVRecord) async throws
    /// Sets value, update_time and version + 1 where (cat, key) has `record.version`; else `storageNotFound`.
    func updateKV(_ record: KVRecord, now: Timestamp) async throws
    /// Deletes (cat, key); nothing deleted throws `storageNotFound`.
    func deleteKV(cat: String, key: String) async throws
}

extension TransactionStore {
    /// A durable `changeStatus`.
    package func changeStatus(
        gid: String, from: GlobalStatus, to: GlobalStatus, change: StatusChange, branchUpdates: [BranchStatusUpdate] = [], now: Timestamp
    ) async throws {
        try await changeStatus(gid: gid, from: from, to: to, change: change, branchUpdates: branchUpdates, now: now, durability: .durable)
    }

    /// A durable `updateBranches`.
    package func updateBranches(gid: String, requiring: GlobalStatus, updates: [BranchStatusUpdate], now: Timestamp) async throws {
        try await updateBranches(gid: gid, requiring: requiring, updates: updates, now: now, durability: .durable)
    }

    /// A durable `touchCronTime` (without branch updates: a no-op if the status moved).
    package func touchCronTime(
        gid: String, requiring: GlobalStatus, interval: Int64, nextCronTime: Timestamp, branchUpdates: [BranchStatusUpdate] = [], now: Timestamp
    ) async throws {
        try await touchCronTime(
            gid: gid, requiring: requiring, interval: interval, nextCronTime: nextCronTime, branchUpdates: branchUpdates, now: now, durability: .durable)
    }
}
