package import DTMCore
import Synchronization

/// A `TransactionStore` in memory: the reference for the store contract, used by the core tests. Nothing is
/// durable; it is not offered as a server store.
package final class InMemoryStore: TransactionStore {
    private struct State {
        var transactions: [String: GlobalTransaction] = [:]
        var branches: [String: [Branch]] = [:]
        var kv: [KVRecord] = []
        var lastErrors: [String: String] = [:]
        var nextID: Int64 = 1
        var writes: [String] = []
    }
    private let state = Mutex(State())

    package init() {}

    /// The round writes asked for so far, in order, as "<method> <durability>" (what a durable store would fsync).
    package var roundWrites: [String] { state.withLock { $0.writes } }

    package func saveNew(_ transaction: GlobalTransaction, branches: [Branch]) async throws -> GlobalTransaction? {
        state.withLock { s in
            if let existing = s.transactions[transaction.gid] { return existing }
            var t = transaction
            t.id = s.nextID
            s.nextID += 1
            s.transactions[t.gid] = t
            s.branches[t.gid] = branches.map { b in
                var b = b
                b.id = s.nextID
                s.nextID += 1
                return b
            }
            return nil
        }
    }

    package func transaction(gid: String) async throws -> GlobalTransaction? {
        state.withLock { $0.transactions[gid] }
    }

    package func branches(gid: String) async throws -> [Branch] {
        state.withLock { $0.branches[gid] ?? [] }
    }

    package func changeStatus(
        gid: String, from: GlobalStatus, to: GlobalStatus, change: StatusChange, branchUpdates: [BranchStatusUpdate], now: Timestamp,
        durability: WriteDurability
    ) async throws {
        try state.withLock { s throws(DTMError) in
            s.writes.append("changeStatus \(durability)")
            guard var t = s.transactions[gid], t.status == from else { throw DTMError.storageNotFound("") }
            let rows = try Self.applying(branchUpdates, to: s.branches[gid] ?? [], gid: gid, now: now)
            t.status = to
            t.updateTime = now
            if let v = change.finishTime { t.finishTime = v }
            if let v = change.rollbackTime { t.rollbackTime = v }
            if let v = change.rollbackReason { t.rollbackReason = v }
            if let v = change.result { t.result = v }
            s.transactions[gid] = t
            if !branchUpdates.isEmpty { s.branches[gid] = rows }
        }
    }

    package func insertBranches(gid: String, requiring: GlobalStatus, branches: [Branch]) async throws {
        try state.withLock { s throws(DTMError) in
            guard let t = s.transactions[gid], t.status == requiring else { throw DTMError.storageNotFound("") }
            var rows = s.branches[gid] ?? []
            for b in branches where rows.contains(where: { $0.branchID == b.branchID && $0.op == b.op }) {
                throw DTMError.uniqueConflict("branch \(b.branchID)/\(b.op) of \(gid) exists")
            }
            for var b in branches {
                b.id = s.nextID
                s.nextID += 1
                rows.append(b)
            }
            s.branches[gid] = rows
        }
    }

    package func updateBranches(gid: String, requiring: GlobalStatus, updates: [BranchStatusUpdate], now: Timestamp, durability: WriteDurability) async throws {
        try state.withLock { s throws(DTMError) in
            s.writes.append("updateBranches \(durability)")
            guard let t = s.transactions[gid], t.status == requiring else { throw DTMError.storageNotFound("") }
            s.branches[gid] = try Self.applying(updates, to: s.branches[gid] ?? [], gid: gid, now: now)
        }
    }

    package func touchCronTime(
        gid: String, requiring: GlobalStatus, interval: Int64, nextCronTime: Timestamp, branchUpdates: [BranchStatusUpdate],
        now: Timestamp, durability: WriteDurability
    ) async throws {
        try state.withLock { s throws(DTMError) in
            s.writes.append("touchCronTime \(durability)")
            guard var t = s.transactions[gid], t.status == requiring else {
                if branchUpdates.isEmpty { return }
                throw DTMError.storageNotFound("")
            }
            let rows = try Self.applying(branchUpdates, to: s.branches[gid] ?? [], gid: gid, now: now)
            t.nextCronInterval = interval
            t.nextCronTime = nextCronTime
            t.updateTime = now
            s.transactions[gid] = t
            if !branchUpdates.isEmpty { s.branches[gid] = rows }
        }
    }

    /// `rows` with `updates` applied; `storageNotFound` if one names no row.
    private static func applying(_ updates: [BranchStatusUpdate], to rows: [Branch], gid: String, now: Timestamp) throws(DTMError) -> [Branch] {
        var rows = rows
        for u in updates {
            guard let i = rows.firstIndex(where: { $0.branchID == u.branchID && $0.op == u.op }) else {
                throw DTMError.storageNotFound("branch \(u.branchID)/\(u.op) of \(gid)")
            }
            rows[i].status = u.status
            rows[i].finishTime = u.finishTime
            rows[i].updateTime = now
        }
        return rows
    }

    package func claimDue(dueBefore: Timestamp, leaseUntil: Timestamp, owner: String, limit: Int, now: Timestamp) async throws -> [GlobalTransaction] {
        state.withLock { s in
            let due = s.transactions.values
                .filter { !$0.status.isFinished && ($0.nextCronTime ?? now) <= dueBefore }
                .sorted { ($0.nextCronTime ?? now, $0.id) < ($1.nextCronTime ?? now, $1.id) }
                .prefix(limit)
            return due.map { t in
                var t = t
                t.nextCronTime = leaseUntil
                t.owner = owner
                t.updateTime = now
                s.transactions[t.gid] = t
                return t
            }
        }
    }

    package func resetCronTime(laterThan: Timestamp, limit: Int, now: Timestamp) async throws -> (count: Int, hasRemaining: Bool) {
        state.withLock { s in
            let matching = s.transactions.values.filter { !$0.status.isFinished && ($0.nextCronTime ?? now) > laterThan }
                .sorted { $0.id < $1.id }
            for t in matching.prefix(limit) {
                s.transactions[t.gid]?.nextCronTime = now
                s.transactions[t.gid]?.updateTime = now
            }
            let count = min(limit, matching.count)
            return (count, count == limit)
        }
    }

    package func renewLease(gid: String, owner: String, until: Timestamp, now: Timestamp) async throws -> Bool {
        state.withLock { s in
            guard let t = s.transactions[gid], !t.status.isFinished,
                t.owner == owner || t.owner.isEmpty || (t.nextCronTime ?? now) <= now
            else { return false }
            s.transactions[gid]?.owner = owner
            s.transactions[gid]?.nextCronTime = until
            s.transactions[gid]?.updateTime = now
            return true
        }
    }

    package func resetNextCronTime(gid: String, now: Timestamp) async throws {
        try state.withLock { s throws(DTMError) in
            guard s.transactions[gid] != nil else { throw DTMError.storageNotFound("") }
            s.transactions[gid]?.nextCronTime = now
            s.transactions[gid]?.updateTime = now
        }
    }

    package func backlog(now: Timestamp, overdueBefore: Timestamp, cap: Int) async throws -> Backlog {
        state.withLock { s in
            var b = Backlog()
            for t in s.transactions.values where !t.status.isFinished {
                switch t.status {
                case .prepared: b.prepared = min(b.prepared + 1, cap)
                case .submitted: b.submitted = min(b.submitted + 1, cap)
                case .aborting: b.aborting = min(b.aborting + 1, cap)
                default: break
                }
                if let next = t.nextCronTime, next <= now { b.due = min(b.due + 1, cap) }
                if let next = t.nextCronTime, next < overdueBefore { b.overdue = min(b.overdue + 1, cap) }
            }
            return b
        }
    }

    package func recordError(gid: String, message: String) async throws {
        state.withLock { s in if s.transactions[gid] != nil { s.lastErrors[gid] = message } }
    }

    package func unfinishedOldest(limit: Int) async throws -> [(transaction: GlobalTransaction, lastError: String)] {
        state.withLock { s in
            s.transactions.values.filter { !$0.status.isFinished }.sorted { ($0.createTime, $0.id) < ($1.createTime, $1.id) }.prefix(limit)
                .map { ($0, s.lastErrors[$0.gid] ?? "") }
        }
    }

    package func deleteFinished(before: Timestamp, limit: Int) async throws -> Int {
        state.withLock { s in
            let gone = s.transactions.values.filter { $0.status.isFinished && $0.updateTime < before }
                .sorted { ($0.updateTime, $0.id) < ($1.updateTime, $1.id) }.prefix(limit).map(\.gid)
            for gid in gone {
                s.transactions[gid] = nil
                s.branches[gid] = nil
                s.lastErrors[gid] = nil
            }
            return gone.count
        }
    }

    package func scan(position: Int64?, limit: Int, filter: TransactionFilter) async throws -> (transactions: [GlobalTransaction], nextPosition: Int64?) {
        state.withLock { s in
            let page = s.transactions.values
                .filter { t in
                    (position.map { t.id < $0 } ?? true)
                        && (filter.status.isEmpty || t.status.rawValue == filter.status)
                        && (filter.transType.isEmpty || t.transType.rawValue == filter.transType)
                        && (filter.createTimeStart.map { t.createTime >= $0 } ?? true)
                        && (filter.createTimeEnd.map { t.createTime <= $0 } ?? true)
                }
                .sorted { $0.id > $1.id }
                .prefix(limit)
            let rows = Array(page)
            return (rows, rows.count == limit ? rows.last?.id : nil)
        }
    }

    package func scanKV(cat: String, position: Int64?, limit: Int) async throws -> (records: [KVRecord], nextPosition: Int64?) {
        state.withLock { s in
            let rows = Array(s.kv.filter { r in r.cat == cat && (position.map { r.id < $0 } ?? true) }.sorted { $0.id > $1.id }.prefix(limit))
            return (rows, rows.count == limit ? rows.last?.id : nil)
        }
    }

    package func findKV(cat: String, key: String) async throws -> [KVRecord] {
        state.withLock { s in s.kv.filter { (cat.isEmpty || $0.cat == cat) && (key.isEmpty || $0.key == key) } }
    }

    package func createKV(_ record: KVRecord) async throws {
        try state.withLock { s throws(DTMError) in
            if s.kv.contains(where: { $0.cat == record.cat && $0.key == record.key }) { throw DTMError.uniqueConflict("") }
            var r = record
            r.id = s.nextID
            r.version = 1
            s.nextID += 1
            s.kv.append(r)
        }
    }

    package func updateKV(_ record: KVRecord, now: Timestamp) async throws {
        try state.withLock { s throws(DTMError) in
            guard let i = s.kv.firstIndex(where: { $0.cat == record.cat && $0.key == record.key && $0.version == record.version }) else {
                throw DTMError.storageNotFound("")
            }
            s.kv[i].value = record.value
            s.kv[i].version += 1
            s.kv[i].updateTime = now
        }
    }

    package func deleteKV(cat: String, key: String) async throws {
        try state.withLock { s throws(DTMError) in
            guard let i = s.kv.firstIndex(where: { $0.cat == cat && $0.key == key }) else { throw DTMError.storageNotFound("") }
            s.kv.remove(at: i)
        }
    }
}
