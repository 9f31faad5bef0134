package import DTMCore
import Logging

/// The writes. Each job decides its own answer (a compare-and-set that did not match, a missing branch, a duplicate)
/// before it changes anything, so that the batch it shares commits without it (see `MySQLWriter`).
extension MySQLStore {
    /// Branch rows per INSERT statement.
    private static let branchesPerStatement = 64

    private static func insert(_ branches: [Branch], keepExisting: Bool, _ sql: MySQLSQL, _ c: MySQLConnection) throws {
        var start = 0
        while start < branches.count {
            let chunk = branches[start..<min(start + branchesPerStatement, branches.count)]
            _ = try c.run(sql.insertBranches(chunk.count, keepExisting: keepExisting), chunk.flatMap(MySQLRows.branchValues))
            start += chunk.count
        }
    }

    package func saveNew(_ transaction: GlobalTransaction, branches: [Branch]) async throws -> GlobalTransaction? {
        try MySQLColumnLimits.check(transaction)
        try MySQLColumnLimits.check(branches)
        let values = MySQLRows.globalValues(transaction)
        let sql = self.sql
        let bytes = values.reduce(0) { $0 + $1.byteCount } + branches.reduce(0) { $0 + $1.binData.count + $1.url.utf8.count }
        let merge = MySQLMergeable(kind: .saveNew, gid: transaction.gid, row: values, children: branches.map(MySQLRows.branchValues))
        let inserted = try await writer.write(single: branches.isEmpty, bytes: bytes, merge: merge, merged: true) { c in
            do {
                _ = try c.run(sql.insertGlobal, values)
            } catch let error as MySQLStoreError where error.isDuplicateKey {
                // InnoDB undid the statement only: the job has changed nothing.
                return false
            }
            try Self.insert(branches, keepExisting: true, sql, c)
            return true
        }
        if inserted { return nil }
        guard let stored = try await self.transaction(gid: transaction.gid) else {
            throw DTMError.storageNotFound("gid \(transaction.gid) exists but cannot be read")
        }
        return stored
    }

    /// The first update whose branch row does not exist, as "branch x/op of gid".
    private static func missing(_ updates: [BranchStatusUpdate], gid: String, _ sql: MySQLSQL, _ c: MySQLConnection) throws -> String? {
        let rows = try c.run(sql.branchKeys, [.text(gid)]).rows
        var keys = Set<String>()
        for row in rows {
            let r = MySQLColumns(row)
            keys.insert("\(try r.text(0))/\(try r.text(1))")
        }
        return updates.first { !keys.contains("\($0.branchID)/\($0.op)") }.map { "branch \($0.branchID)/\($0.op) of \(gid)" }
    }

    private static func apply(_ updates: [BranchStatusUpdate], gid: String, now: Timestamp, _ sql: MySQLSQL, _ c: MySQLConnection) throws {
        for u in updates {
            _ = try c.run(sql.updateBranch, [.text(u.status.rawValue), .at(u.finishTime), .at(now), .text(gid), .text(u.branchID), .text(u.op)])
        }
    }

    package func changeStatus(
        gid: String, from: GlobalStatus, to: GlobalStatus, change: StatusChange, branchUpdates: [BranchStatusUpdate], now: Timestamp,
        durability: WriteDurability
    ) async throws {
        if Self.unmatchable(gid) { throw DTMError.storageNotFound("") }
        if let result = change.result { try MySQLColumnLimits.fits("result", result, 1024) }
        let values: [MySQLValue] = [
            .text(to.rawValue), .at(now), .at(change.finishTime), .at(change.rollbackTime),
            .optionalText(change.rollbackReason.map { MySQLColumnLimits.fitted($0, 1024) }), .optionalText(change.result), .text(gid),
            .text(from.rawValue),
        ]
        let sql = self.sql
        if branchUpdates.count == 1 {
            // The common case (a round's last branch and its outcome) in one statement; if it matched nothing it
            // changed nothing, and a read says why.
            let u = branchUpdates[0]
            let joined: [MySQLValue] =
                [.text(u.branchID), .text(u.op)] + values.dropLast(2) + [.text(u.status.rawValue), .at(u.finishTime), .at(now)] + values.suffix(2)
            try await writer.write(single: true) { c in
                if try c.run(sql.changeStatusAndBranch, joined).affectedRows > 0 { return }
                if let missing = try Self.missing(branchUpdates, gid: gid, sql, c) { throw DTMError.storageNotFound(missing) }
                throw DTMError.storageNotFound("")
            }
            return
        }
        try await writer.write(single: branchUpdates.isEmpty) { c in
            if !branchUpdates.isEmpty, let missing = try Self.missing(branchUpdates, gid: gid, sql, c) { throw DTMError.storageNotFound(missing) }
            if try c.run(sql.changeStatus, values).affectedRows == 0 { throw DTMError.storageNotFound("") }
            try Self.apply(branchUpdates, gid: gid, now: now, sql, c)
        }
    }

    package func insertBranches(gid: String, requiring: GlobalStatus, branches: [Branch]) async throws {
        if Self.unmatchable(gid) { throw DTMError.storageNotFound("") }
        try MySQLColumnLimits.check(branches)
        let sql = self.sql
        let bytes = branches.reduce(0) { $0 + $1.binData.count + $1.url.utf8.count }
        try await writer.write(bytes: bytes) { c in
            if try c.run(sql.globalInStatus, [.text(gid), .text(requiring.rawValue)]).rows.isEmpty { throw DTMError.storageNotFound("") }
            let existing = try c.run(sql.branchKeys, [.text(gid)]).rows.map { row in
                let r = MySQLColumns(row)
                return "\(try r.text(0))/\(try r.text(1))"
            }
            if let duplicate = branches.first(where: { existing.contains("\($0.branchID)/\($0.op)") }) {
                throw DTMError.uniqueConflict("branch \(duplicate.branchID)/\(duplicate.op) of \(gid) exists")
            }
            do {
                try Self.insert(branches, keepExisting: false, sql, c)
            } catch let error as MySQLStoreError where error.isDuplicateKey && branches.count <= Self.branchesPerStatement {
                // Another coordinator inserted the same branch at the same moment; the one statement was undone.
                throw DTMError.uniqueConflict("branch of \(gid) exists: \(error.reason)")
            }
        }
    }

    package func updateBranches(gid: String, requiring: GlobalStatus, updates: [BranchStatusUpdate], now: Timestamp, durability: WriteDurability) async throws {
        if Self.unmatchable(gid) { throw DTMError.storageNotFound("") }
        let sql = self.sql
        if updates.count == 1 {
            // The common case in one statement; if it matched nothing it changed nothing, and a read says why.
            let u = updates[0]
            let values: [MySQLValue] = [
                .text(u.status.rawValue), .at(u.finishTime), .at(now), .text(gid), .text(u.branchID), .text(u.op), .text(requiring.rawValue),
            ]
            try await writer.write(single: true) { c in
                if try c.run(sql.updateBranchInStatus, values).affectedRows > 0 { return }
                if try c.run(sql.globalStatus, [.text(gid), .text(requiring.rawValue)]).rows.isEmpty { throw DTMError.storageNotFound("") }
                throw DTMError.storageNotFound("branch \(u.branchID)/\(u.op) of \(gid)")
            }
            return
        }
        try await writer.write { c in
            if try c.run(sql.globalInStatus, [.text(gid), .text(requiring.rawValue)]).rows.isEmpty { throw DTMError.storageNotFound("") }
            if let missing = try Self.missing(updates, gid: gid, sql, c) { throw DTMError.storageNotFound(missing) }
            try Self.apply(updates, gid: gid, now: now, sql, c)
        }
    }

    package func touchCronTime(
        gid: String, requiring: GlobalStatus, interval: Int64, nextCronTime: Timestamp, branchUpdates: [BranchStatusUpdate],
        now: Timestamp, durability: WriteDurability
    ) async throws {
        if Self.unmatchable(gid) {
            if branchUpdates.isEmpty { return }
            throw DTMError.storageNotFound("")
        }
        let values: [MySQLValue] = [.int(Int64(Int32(clamping: interval))), .due(nextCronTime), .at(now), .text(gid), .text(requiring.rawValue)]
        let sql = self.sql
        try await writer.write(single: branchUpdates.isEmpty) { c in
            if branchUpdates.isEmpty {
                _ = try c.run(sql.touchCronTime, values)
                return
            }
            if let missing = try Self.missing(branchUpdates, gid: gid, sql, c) { throw DTMError.storageNotFound(missing) }
            if try c.run(sql.touchCronTime, values).affectedRows == 0 { throw DTMError.storageNotFound("") }
            try Self.apply(branchUpdates, gid: gid, now: now, sql, c)
        }
    }

    /// Claims with `FOR UPDATE SKIP LOCKED`, so coordinators claiming at once take different rows. A due row the
    /// model cannot read is set aside for `unreadableRowPause` and logged, so that it neither fails every claim
    /// nor comes back at every pass.
    package func claimDue(dueBefore: Timestamp, leaseUntil: Timestamp, owner: String, limit: Int, now: Timestamp) async throws -> [GlobalTransaction] {
        let sql = self.sql
        let pause = now.adding(seconds: Self.unreadableRowPause)
        let (claimed, unreadable) = try await writer.write { c -> ([GlobalTransaction], [UnreadableRow]) in
            let rows = try c.run(sql.claimDue, [.instant(dueBefore), .int(Int64(limit))]).rows
            var claimed: [GlobalTransaction] = []
            var unreadable: [UnreadableRow] = []
            var ids: [Int64] = []
            for row in rows {
                let columns = MySQLColumns(row, gidColumn: 1)
                do {
                    var t = try MySQLRows.global(columns)
                    t.owner = owner
                    t.nextCronTime = leaseUntil.wholeSecondUp
                    t.updateTime = Timestamp(microseconds: Saturating.multiply(MySQLTime.nearestSecond(now), 1_000_000))
                    claimed.append(t)
                    ids.append(t.id)
                } catch let e as UnreadableRow {
                    _ = try c.run(sql.park, [.due(pause), .int(try columns.int(0))])
                    unreadable.append(e)
                }
            }
            for list in MySQLSQL.padded(ids) {
                _ = try c.run(sql.lease(list.count), [.text(owner), .due(leaseUntil), .at(now)] + list.map { .int($0) })
            }
            return (claimed, unreadable)
        }
        for e in unreadable {
            logger.error(
                "stored transaction cannot be processed; set aside",
                metadata: ["gid": .string(e.gid), "error": .string(e.problem), "seconds": .stringConvertible(Self.unreadableRowPause)])
        }
        return claimed
    }

    /// How long a row that cannot be read is left alone before it is looked at again, seconds.
    static let unreadableRowPause: Double = 3600

    package func renewLease(gid: String, owner: String, until: Timestamp, now: Timestamp) async throws -> Bool {
        if Self.unmatchable(gid) { return false }
        let values: [MySQLValue] = [.text(owner), .due(until), .at(now), .text(gid), .text(owner), .instant(now)]
        let sql = self.sql
        return try await writer.write(single: true) { c in try c.run(sql.renewLease, values).affectedRows > 0 }
    }

    package func resetCronTime(laterThan: Timestamp, limit: Int, now: Timestamp) async throws -> (count: Int, hasRemaining: Bool) {
        let sql = self.sql
        let count = try await writer.write(single: true) { c in
            try c.run(sql.resetCronTime, [.at(now), .at(now), .instant(laterThan), .int(Int64(limit))]).affectedRows
        }
        return (Int(count), count == Int64(limit))
    }

    package func resetNextCronTime(gid: String, now: Timestamp) async throws {
        if Self.unmatchable(gid) { throw DTMError.storageNotFound("") }
        let sql = self.sql
        try await writer.write(single: true) { c in
            if try c.run(sql.resetNextCronTime, [.at(now), .at(now), .text(gid)]).affectedRows == 0 { throw DTMError.storageNotFound("") }
        }
    }

    package func recordError(gid: String, message: String) async throws {
        if Self.unmatchable(gid) { return }
        let values: [MySQLValue] = [.text(MySQLColumnLimits.fitted(message, 1024)), .text(gid)]
        let sql = self.sql
        try await writer.write(single: true) { c in _ = try c.run(sql.recordError, values) }
    }

    package func deleteFinished(before: Timestamp, limit: Int) async throws -> Int {
        let sql = self.sql
        return try await writer.write { c in
            let rows = try c.run(sql.finishedBefore, [.instant(before), .int(Int64(limit))]).rows
            var ids: [Int64] = []
            var gids: [String] = []
            for row in rows {
                let r = MySQLColumns(row)
                ids.append(try r.int(0))
                gids.append(try r.text(1))
            }
            for list in MySQLSQL.padded(gids) { _ = try c.run(sql.deleteBranches(list.count), list.map { .text($0) }) }
            for list in MySQLSQL.padded(ids) { _ = try c.run(sql.deleteGlobals(list.count), list.map { .int($0) }) }
            return ids.count
        }
    }

    package func createKV(_ record: KVRecord) async throws {
        try MySQLColumnLimits.check(record)
        let values: [MySQLValue] = [.text(record.cat), .text(record.key), .text(record.value), .at(record.createTime), .at(record.createTime)]
        let sql = self.sql
        try await writer.write(single: true, bytes: record.value.utf8.count) { c in
            do {
                _ = try c.run(sql.createKV, values)
            } catch let error as MySQLStoreError where error.isDuplicateKey {
                throw DTMError.uniqueConflict("")
            }
        }
    }

    package func updateKV(_ record: KVRecord, now: Timestamp) async throws {
        try MySQLColumnLimits.check(record)
        let values: [MySQLValue] = [.text(record.value), .at(now), .text(record.cat), .text(record.key), .int(record.version)]
        let sql = self.sql
        try await writer.write(single: true, bytes: record.value.utf8.count) { c in
            if try c.run(sql.updateKV, values).affectedRows == 0 { throw DTMError.storageNotFound("") }
        }
    }

    package func deleteKV(cat: String, key: String) async throws {
        if Self.unmatchable(cat, key) { throw DTMError.storageNotFound("") }
        let sql = self.sql
        try await writer.write(single: true) { c in
            if try c.run(sql.deleteKV, [.text(cat), .text(key)]).affectedRows == 0 { throw DTMError.storageNotFound("") }
        }
    }
}
