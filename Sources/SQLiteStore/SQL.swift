/// Every statement the store runs more than once. Each connection prepares one on first use and finds it again by
/// index: keying the cache by the SQL text hashed and compared a few hundred bytes per statement, a measurable
/// share of the writer thread's time.
enum SQL: Int, CaseIterable {
    case begin, commit, savepoint, release, rollbackTo
    case insertGlobal, insertBranch
    case globalByGid, globalByID, branchesByGid, statusByGid
    case changeStatus, updateBranch, touchCronTime
    case dueIDs, claim, renewLease, resetCronTime, resetNextCronTime, finishedIDs, deleteGlobal, deleteBranches, countStatus, countDue, recordError,
        unfinishedOldest
    case scan, scanKV, findKV, createKV, updateKV, deleteKV

    var text: String {
        switch self {
        case .begin: "BEGIN IMMEDIATE"
        case .commit: "COMMIT"
        case .savepoint: "SAVEPOINT job"
        case .release: "RELEASE job"
        case .rollbackTo: "ROLLBACK TO job"
        case .insertGlobal:
            """
            INSERT INTO trans_global (gid, trans_type, status, query_prepared, protocol, create_time, update_time, finish_time,
              rollback_time, options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) ON CONFLICT(gid) DO NOTHING
            """
        case .insertBranch:
            """
            INSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, finish_time, rollback_time, create_time, update_time)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
            """
        case .globalByGid: "SELECT \(RowMapping.globalColumns) FROM trans_global WHERE gid = ?1"
        case .globalByID: "SELECT \(RowMapping.globalColumns) FROM trans_global WHERE id = ?1"
        case .branchesByGid: "SELECT \(RowMapping.branchColumns) FROM trans_branch_op WHERE gid = ?1 ORDER BY id"
        case .statusByGid: "SELECT status FROM trans_global WHERE gid = ?1"
        case .changeStatus:
            """
            UPDATE trans_global SET status = ?3, update_time = ?4,
              finish_time = coalesce(?5, finish_time), rollback_time = coalesce(?6, rollback_time),
              rollback_reason = coalesce(?7, rollback_reason), result = coalesce(?8, result)
            WHERE gid = ?1 AND status = ?2
            """
        case .updateBranch:
            "UPDATE trans_branch_op SET status = ?4, finish_time = ?5, update_time = ?6 WHERE gid = ?1 AND branch_id = ?2 AND op = ?3"
        case .touchCronTime:
            "UPDATE trans_global SET next_cron_interval = ?3, next_cron_time = ?4, update_time = ?5 WHERE gid = ?1 AND status = ?2"
        case .dueIDs:
            """
            SELECT id FROM trans_global WHERE status IN ('prepared', 'submitted', 'aborting') AND next_cron_time <= ?1
            ORDER BY next_cron_time LIMIT ?2
            """
        case .claim: "UPDATE trans_global SET owner = ?2, next_cron_time = ?3, update_time = ?4 WHERE id = ?1"
        case .renewLease:
            """
            UPDATE trans_global SET owner = ?2, next_cron_time = ?3, update_time = ?4
            WHERE gid = ?1 AND status IN ('prepared', 'submitted', 'aborting')
              AND (owner = ?2 OR owner = '' OR owner IS NULL OR next_cron_time IS NULL OR next_cron_time <= ?4)
            """
        case .resetCronTime:
            """
            UPDATE trans_global SET next_cron_time = ?2, update_time = ?2 WHERE id IN (
              SELECT id FROM trans_global WHERE status IN ('prepared', 'submitted', 'aborting') AND next_cron_time > ?1 LIMIT ?3)
            """
        case .resetNextCronTime: "UPDATE trans_global SET next_cron_time = ?2, update_time = ?2 WHERE gid = ?1"
        case .finishedIDs:
            "SELECT id, gid FROM trans_global WHERE status IN ('succeed', 'failed') AND update_time < ?1 ORDER BY update_time LIMIT ?2"
        case .deleteGlobal: "DELETE FROM trans_global WHERE id = ?1"
        case .recordError: "UPDATE trans_global SET last_error = ?2 WHERE gid = ?1"
        case .unfinishedOldest:
            """
            SELECT \(RowMapping.globalColumns), last_error FROM trans_global WHERE status IN ('prepared', 'submitted', 'aborting')
            ORDER BY create_time, id LIMIT ?1
            """
        case .countStatus: "SELECT count(*) FROM (SELECT 1 FROM trans_global WHERE status = ?1 LIMIT ?2)"
        case .countDue:
            """
            SELECT count(*) FROM (SELECT 1 FROM trans_global WHERE status IN ('prepared', 'submitted', 'aborting')
              AND next_cron_time <= ?1 LIMIT ?2)
            """
        case .deleteBranches: "DELETE FROM trans_branch_op WHERE gid = ?1"
        case .scan:
            """
            SELECT \(RowMapping.globalColumns) FROM trans_global
            WHERE (?1 IS NULL OR id < ?1) AND (?2 = '' OR status = ?2) AND (?3 = '' OR trans_type = ?3)
              AND (?4 IS NULL OR create_time >= ?4) AND (?5 IS NULL OR create_time <= ?5)
            ORDER BY id DESC LIMIT ?6
            """
        case .scanKV: "SELECT \(RowMapping.kvColumns) FROM kv WHERE cat = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
        case .findKV: "SELECT \(RowMapping.kvColumns) FROM kv WHERE (?1 = '' OR cat = ?1) AND (?2 = '' OR k = ?2) ORDER BY id"
        case .createKV:
            "INSERT INTO kv (cat, k, v, version, create_time, update_time) VALUES (?1, ?2, ?3, 1, ?4, ?4) ON CONFLICT(cat, k) DO NOTHING"
        case .updateKV: "UPDATE kv SET v = ?3, version = version + 1, update_time = ?5 WHERE cat = ?1 AND k = ?2 AND version = ?4"
        case .deleteKV: "DELETE FROM kv WHERE cat = ?1 AND k = ?2"
        }
    }
}
