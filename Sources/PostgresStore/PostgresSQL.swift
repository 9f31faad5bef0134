/// Every statement the store runs, prepared once per connection and found again by index. Parameters are cast
/// (`$1::text`), so that the types the server infers are the ones the values are encoded in (`PostgresValue`).
///
/// Each write is one statement (data-modifying CTEs), so that a job is atomic on its own and a batch of jobs costs
/// one round trip per job plus BEGIN and COMMIT.
enum PostgresStatement: Int, CaseIterable {
    case begin, commit, rollback
    case saveNew, globalByGid, branchesByGid
    case changeStatus, changeStatusOnly, updateBranches, updateBranch, touchCronTime, touchCronTimeOnly, insertBranches, existingBranch
    case claimDue, renewLease, park, resetCronTime, resetNextCronTime, deleteFinished, backlog, recordError, unfinishedOldest
    case scan, scanKV, findKV, createKV, updateKV, deleteKV
    case saveNewMany, changeStatusMany, updateBranchMany

    static func merged(_ kind: PostgresMergeable.Kind) -> PostgresStatement {
        switch kind {
        case .saveNew: .saveNewMany
        case .changeStatus: .changeStatusMany
        case .updateBranch: .updateBranchMany
        }
    }
}

/// The text of each statement for one set of table names.
struct PostgresSQL: Sendable {
    let texts: [String]

    subscript(_ s: PostgresStatement) -> String { texts[s.rawValue] }

    static let globalColumns = """
        id, gid, trans_type, status, query_prepared, protocol, create_time, update_time, finish_time, rollback_time, \
        options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason
        """
    static let branchColumns = "id, gid, url, bin_data, branch_id, op, status, finish_time, rollback_time, create_time, update_time"
    static let kvColumns = "id, cat, k, v, version, create_time, update_time"
    static let unfinished = "('prepared', 'aborting', 'submitted')"

    init(_ t: PostgresTables) {
        texts = PostgresStatement.allCases.map { Self.text($0, t) }
    }

    /// Branch status updates as a relation, from parameters `$n … $n+3`, and the first of them with no row.
    private static func updates(from n: Int, _ b: String) -> String {
        """
        u AS (SELECT * FROM unnest($\(n)::text[], $\(n + 1)::text[], $\(n + 2)::text[], $\(n + 3)::timestamptz[])
          AS u(branch_id, op, status, finish_time)),
        missing AS (SELECT u.branch_id || '/' || u.op AS name FROM u WHERE NOT EXISTS (
          SELECT 1 FROM \(b) t WHERE t.gid = $1::text AND t.branch_id = u.branch_id AND t.op = u.op) LIMIT 1)
        """
    }

    /// New branch rows from parameters `$n … $n+8`, in their order.
    private static func newBranches(from n: Int) -> String {
        """
        unnest($\(n)::text[], $\(n + 1)::bytea[], $\(n + 2)::text[], $\(n + 3)::text[], $\(n + 4)::text[], $\(n + 5)::timestamptz[],
          $\(n + 6)::timestamptz[], $\(n + 7)::timestamptz[], $\(n + 8)::timestamptz[]) WITH ORDINALITY
          AS u(url, bin_data, branch_id, op, status, finish_time, rollback_time, create_time, update_time, n)
        """
    }

    private static let branchInsertColumns = "gid, url, bin_data, branch_id, op, status, finish_time, rollback_time, create_time, update_time"
    private static let branchInsertValues =
        "$1::text, u.url, u.bin_data, u.branch_id, u.op, u.status, u.finish_time, u.rollback_time, u.create_time, u.update_time"

    private static func text(_ s: PostgresStatement, _ t: PostgresTables) -> String {
        let g = t.global
        let b = t.branch
        switch s {
        case .saveNewMany: return PostgresMergedSQL.text(.saveNew, t)
        case .changeStatusMany: return PostgresMergedSQL.text(.changeStatus, t)
        case .updateBranchMany: return PostgresMergedSQL.text(.updateBranch, t)
        case .begin: return "BEGIN"
        case .commit: return "COMMIT"
        case .rollback: return "ROLLBACK"
        case .saveNew:
            return """
                WITH g AS (
                  INSERT INTO \(g) (gid, trans_type, status, query_prepared, protocol, create_time, update_time, finish_time,
                    rollback_time, options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason)
                  VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::timestamptz, $7::timestamptz, $8::timestamptz,
                    $9::timestamptz, $10::text, $11::text, $12::int8, $13::timestamptz, $14::text, $15::text, $16::text, $17::text)
                  ON CONFLICT (gid) DO NOTHING RETURNING id),
                b AS (
                  INSERT INTO \(b) (\(branchInsertColumns))
                  SELECT \(branchInsertValues) FROM g, \(newBranches(from: 18)) ORDER BY u.n
                  ON CONFLICT DO NOTHING RETURNING 1)
                SELECT (SELECT count(*) FROM g), (SELECT count(*) FROM b)
                """
        case .globalByGid: return "SELECT \(globalColumns) FROM \(g) WHERE gid = $1::text"
        case .branchesByGid: return "SELECT \(branchColumns) FROM \(b) WHERE gid = $1::text ORDER BY id"
        case .changeStatus:
            return """
                WITH \(updates(from: 9, b)),
                g AS (UPDATE \(g) SET status = $3::text, update_time = $4::timestamptz,
                    finish_time = coalesce($5::timestamptz, finish_time), rollback_time = coalesce($6::timestamptz, rollback_time),
                    rollback_reason = coalesce($7::text, rollback_reason), result = coalesce($8::text, result)
                  WHERE gid = $1::text AND status = $2::text AND NOT EXISTS (SELECT 1 FROM missing) RETURNING id),
                b AS (UPDATE \(b) t SET status = u.status, finish_time = u.finish_time, update_time = $4::timestamptz
                  FROM u, g WHERE t.gid = $1::text AND t.branch_id = u.branch_id AND t.op = u.op RETURNING 1)
                SELECT (SELECT count(*) FROM g), (SELECT name FROM missing), (SELECT count(*) FROM b)
                """
        case .changeStatusOnly:
            // changeStatus without branch updates, the common case: a plain UPDATE.
            return """
                UPDATE \(g) SET status = $3::text, update_time = $4::timestamptz,
                  finish_time = coalesce($5::timestamptz, finish_time), rollback_time = coalesce($6::timestamptz, rollback_time),
                  rollback_reason = coalesce($7::text, rollback_reason), result = coalesce($8::text, result)
                WHERE gid = $1::text AND status = $2::text RETURNING 1
                """
        case .updateBranch:
            // updateBranches of one branch, the common case, without arrays.
            return """
                WITH g AS (SELECT id FROM \(g) WHERE gid = $1::text AND status = $2::text FOR SHARE),
                b AS (UPDATE \(b) t SET status = $5::text, finish_time = $6::timestamptz, update_time = $7::timestamptz
                  FROM g WHERE t.gid = $1::text AND t.branch_id = $3::text AND t.op = $4::text RETURNING 1)
                SELECT (SELECT count(*) FROM g), CASE WHEN (SELECT count(*) FROM b) = 0 THEN $3::text || '/' || $4::text ELSE '' END
                """
        case .touchCronTimeOnly:
            return """
                UPDATE \(g) SET next_cron_interval = $3::int8, next_cron_time = $4::timestamptz, update_time = $5::timestamptz
                WHERE gid = $1::text AND status = $2::text RETURNING 1
                """
        case .updateBranches:
            // FOR SHARE: waits for a status change in flight and sees its outcome (as DTM's FOR UPDATE), while
            // concurrent branches of one transaction do not wait for each other.
            return """
                WITH g AS (SELECT id FROM \(g) WHERE gid = $1::text AND status = $2::text FOR SHARE),
                \(updates(from: 3, b)),
                b AS (UPDATE \(b) t SET status = u.status, finish_time = u.finish_time, update_time = $7::timestamptz
                  FROM u, g WHERE t.gid = $1::text AND t.branch_id = u.branch_id AND t.op = u.op
                    AND NOT EXISTS (SELECT 1 FROM missing) RETURNING 1)
                SELECT (SELECT count(*) FROM g), (SELECT name FROM missing), (SELECT count(*) FROM b)
                """
        case .touchCronTime:
            return """
                WITH \(updates(from: 6, b)),
                g AS (UPDATE \(g) SET next_cron_interval = $3::int8, next_cron_time = $4::timestamptz, update_time = $5::timestamptz
                  WHERE gid = $1::text AND status = $2::text AND NOT EXISTS (SELECT 1 FROM missing) RETURNING id),
                b AS (UPDATE \(b) t SET status = u.status, finish_time = u.finish_time, update_time = $5::timestamptz
                  FROM u, g WHERE t.gid = $1::text AND t.branch_id = u.branch_id AND t.op = u.op RETURNING 1)
                SELECT (SELECT count(*) FROM g), (SELECT name FROM missing), (SELECT count(*) FROM b)
                """
        case .insertBranches:
            return """
                WITH g AS (SELECT id FROM \(g) WHERE gid = $1::text AND status = $2::text FOR SHARE),
                fresh AS (SELECT * FROM \(newBranches(from: 3))),
                dup AS (SELECT fresh.branch_id || '/' || fresh.op AS name FROM fresh WHERE EXISTS (
                  SELECT 1 FROM \(b) t WHERE t.gid = $1::text AND t.branch_id = fresh.branch_id AND t.op = fresh.op) LIMIT 1),
                b AS (INSERT INTO \(b) (\(branchInsertColumns))
                  SELECT \(branchInsertValues) FROM g, fresh u WHERE NOT EXISTS (SELECT 1 FROM dup) ORDER BY u.n RETURNING 1)
                SELECT (SELECT count(*) FROM g), (SELECT name FROM dup), (SELECT count(*) FROM b)
                """
        case .existingBranch:
            return """
                SELECT branch_id || '/' || op FROM \(b) WHERE gid = $1::text
                  AND (branch_id, op) IN (SELECT * FROM unnest($2::text[], $3::text[])) LIMIT 1
                """
        case .claimDue:
            // SKIP LOCKED: coordinators claiming at once take different rows instead of waiting for each other.
            return """
                WITH due AS (SELECT id FROM \(g) WHERE status IN \(unfinished) AND next_cron_time <= $1::timestamptz
                  ORDER BY next_cron_time LIMIT $2::int8 FOR UPDATE SKIP LOCKED)
                UPDATE \(g) t SET owner = $3::text, next_cron_time = $4::timestamptz, update_time = $5::timestamptz
                FROM due WHERE t.id = due.id
                RETURNING \(globalColumns.split(separator: ",").map { "t.\($0.drop { $0 == " " })" }.joined(separator: ", "))
                """
        case .backlog:
            // Each count over at most $3 index entries (the partial index of unfinished rows).
            return """
                SELECT
                  (SELECT count(*) FROM (SELECT 1 FROM \(g) WHERE status IN \(unfinished) AND status = 'prepared' LIMIT $3::int8) p),
                  (SELECT count(*) FROM (SELECT 1 FROM \(g) WHERE status IN \(unfinished) AND status = 'submitted' LIMIT $3::int8) s),
                  (SELECT count(*) FROM (SELECT 1 FROM \(g) WHERE status IN \(unfinished) AND status = 'aborting' LIMIT $3::int8) a),
                  (SELECT count(*) FROM (SELECT 1 FROM \(g) WHERE status IN \(unfinished) AND next_cron_time <= $1::timestamptz LIMIT $3::int8) d),
                  (SELECT count(*) FROM (SELECT 1 FROM \(g) WHERE status IN \(unfinished) AND next_cron_time < $2::timestamptz LIMIT $3::int8) o)
                """
        case .recordError: return "UPDATE \(g) SET last_error = $2::text WHERE gid = $1::text"
        case .unfinishedOldest:
            return """
                SELECT \(globalColumns), last_error FROM \(g) WHERE status IN \(unfinished) ORDER BY create_time, id LIMIT $1::int8
                """
        case .renewLease:
            return """
                UPDATE \(g) SET owner = $2::text, next_cron_time = $3::timestamptz, update_time = $4::timestamptz
                WHERE gid = $1::text AND status IN \(unfinished)
                  AND (owner = $2::text OR owner = '' OR owner IS NULL OR next_cron_time IS NULL OR next_cron_time <= $4::timestamptz)
                RETURNING 1
                """
        case .park: return "UPDATE \(g) SET next_cron_time = $2::timestamptz WHERE id = $1::int8"
        case .resetCronTime:
            return """
                WITH r AS (UPDATE \(g) SET next_cron_time = $2::timestamptz, update_time = $2::timestamptz WHERE id IN (
                  SELECT id FROM \(g) WHERE status IN \(unfinished) AND next_cron_time > $1::timestamptz LIMIT $3::int8) RETURNING 1)
                SELECT count(*) FROM r
                """
        case .resetNextCronTime:
            return "UPDATE \(g) SET next_cron_time = $2::timestamptz, update_time = $2::timestamptz WHERE gid = $1::text RETURNING 1"
        case .deleteFinished:
            return """
                WITH g AS (DELETE FROM \(g) WHERE id IN (
                  SELECT id FROM \(g) WHERE status IN ('succeed', 'failed') AND update_time < $1::timestamptz
                  ORDER BY update_time LIMIT $2::int8 FOR UPDATE SKIP LOCKED) RETURNING gid),
                b AS (DELETE FROM \(b) WHERE gid IN (SELECT gid FROM g) RETURNING 1)
                SELECT (SELECT count(*) FROM g), (SELECT count(*) FROM b)
                """
        case .scan:
            return """
                SELECT \(globalColumns) FROM \(g)
                WHERE id < $1::int8 AND ($2::text = '' OR status = $2::text) AND ($3::text = '' OR trans_type = $3::text)
                  AND ($4::timestamptz IS NULL OR create_time >= $4::timestamptz) AND ($5::timestamptz IS NULL OR create_time <= $5::timestamptz)
                ORDER BY id DESC LIMIT $6::int8
                """
        case .scanKV: return "SELECT \(kvColumns) FROM \(t.kv) WHERE cat = $1::text AND id < $2::int8 ORDER BY id DESC LIMIT $3::int8"
        case .findKV:
            return "SELECT \(kvColumns) FROM \(t.kv) WHERE ($1::text = '' OR cat = $1::text) AND ($2::text = '' OR k = $2::text) ORDER BY id"
        case .createKV:
            return """
                INSERT INTO \(t.kv) (cat, k, v, version, create_time, update_time) VALUES ($1::text, $2::text, $3::text, 1, $4::timestamptz, $4::timestamptz)
                ON CONFLICT (cat, k) DO NOTHING RETURNING 1
                """
        case .updateKV:
            return """
                UPDATE \(t.kv) SET v = $3::text, version = version + 1, update_time = $5::timestamptz
                WHERE cat = $1::text AND k = $2::text AND version = $4::int8 RETURNING 1
                """
        case .deleteKV: return "DELETE FROM \(t.kv) WHERE cat = $1::text AND k = $2::text RETURNING 1"
        }
    }
}
