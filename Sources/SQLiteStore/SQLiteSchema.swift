/// DTM's relational schema (spec §11.2) in SQLite, with a schema version in `PRAGMA user_version`.
///
/// Times are INTEGER microseconds since the Unix epoch (UTC): compact, exact and cheap to compare; read them with
/// `datetime(create_time / 1000000, 'unixepoch')`. Column names are DTM's.
enum SQLiteSchema {
    /// Migration i brings the schema from version i to i + 1. Append only; never edit a released step.
    static let migrations: [String] = [
        """
        CREATE TABLE IF NOT EXISTS trans_global (
          id INTEGER PRIMARY KEY,
          gid TEXT NOT NULL,
          trans_type TEXT NOT NULL,
          status TEXT NOT NULL,
          query_prepared TEXT NOT NULL DEFAULT '',
          protocol TEXT NOT NULL DEFAULT '',
          create_time INTEGER,
          update_time INTEGER,
          finish_time INTEGER,
          rollback_time INTEGER,
          options TEXT DEFAULT '',
          custom_data TEXT DEFAULT '',
          next_cron_interval INTEGER,
          next_cron_time INTEGER,
          owner TEXT NOT NULL DEFAULT '',
          ext_data TEXT DEFAULT '',
          result TEXT DEFAULT '',
          rollback_reason TEXT DEFAULT ''
        );
        CREATE UNIQUE INDEX IF NOT EXISTS gid ON trans_global(gid);
        CREATE INDEX IF NOT EXISTS owner ON trans_global(owner);
        CREATE INDEX IF NOT EXISTS status_next_cron_time ON trans_global(status, next_cron_time);
        CREATE TABLE IF NOT EXISTS trans_branch_op (
          id INTEGER PRIMARY KEY,
          gid TEXT NOT NULL,
          url TEXT NOT NULL DEFAULT '',
          data TEXT,
          bin_data BLOB,
          branch_id TEXT NOT NULL,
          op TEXT NOT NULL,
          status TEXT NOT NULL,
          finish_time INTEGER,
          rollback_time INTEGER,
          create_time INTEGER,
          update_time INTEGER
        );
        CREATE UNIQUE INDEX IF NOT EXISTS gid_branch_uniq ON trans_branch_op(gid, branch_id, op);
        CREATE TABLE IF NOT EXISTS kv (
          id INTEGER PRIMARY KEY,
          cat TEXT NOT NULL,
          k TEXT NOT NULL,
          v TEXT,
          version INTEGER DEFAULT 1,
          create_time INTEGER,
          update_time INTEGER
        );
        CREATE UNIQUE INDEX IF NOT EXISTS uniq_k ON kv(cat, k);
        """,
        // Retention (Store.FinishedDataExpire) deletes finished rows oldest first.
        """
        CREATE INDEX IF NOT EXISTS trans_global_finished ON trans_global(update_time) WHERE status IN ('succeed', 'failed');
        """,
        // The error of a transaction's last failed round (ours), for the console's attention view.
        """
        ALTER TABLE trans_global ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
        """,
    ]

    static var currentVersion: Int64 { Int64(migrations.count) }

    /// Brings the database to the current version, each step in its own transaction.
    static func migrate(_ db: SQLiteConnection) throws {
        let version = try db.scalar("PRAGMA user_version")
        // A stored number: checked before it indexes anything.
        if version < 0 {
            throw SQLiteError(code: 0, message: "database schema version \(version) is not valid", sql: "")
        }
        if version > currentVersion {
            throw SQLiteError(
                code: 0, message: "database schema version \(version) is newer than this server's \(currentVersion)", sql: "")
        }
        for step in Int(version)..<migrations.count {
            try db.execute("BEGIN IMMEDIATE")
            do {
                try db.execute(migrations[step])
                try db.execute("PRAGMA user_version = \(step + 1)")
                try db.execute("COMMIT")
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// `-r`: drops every table and recreates the schema.
    static func reset(_ db: SQLiteConnection) throws {
        try db.execute("BEGIN IMMEDIATE")
        do {
            try db.execute("DROP TABLE IF EXISTS trans_global; DROP TABLE IF EXISTS trans_branch_op; DROP TABLE IF EXISTS kv; PRAGMA user_version = 0")
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
        try migrate(db)
    }
}
