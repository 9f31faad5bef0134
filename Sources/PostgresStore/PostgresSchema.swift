/// DTM's PostgreSQL schema (`sqls/dtmsvr.storage.postgres.sql`: the same tables, columns, types, constraint and
/// index names), so that a database DTM created is used as it is, and the indexes swift-dtm adds, as versioned
/// forward-only migrations recorded in `swift_dtm_schema`.
///
/// Times are DTM's `timestamp(0) with time zone`: whole seconds.
enum PostgresSchema {
    /// Migration i brings the schema from version i to i + 1. Append only; never edit a released step.
    static func migrations(_ t: PostgresTables) -> [String] {
        let g = t.global
        let b = t.branch
        let gBare = PostgresTables.bareName(g)
        return [
            // 1: DTM's tables. IF NOT EXISTS throughout: on a database DTM created this changes nothing.
            """
            CREATE SEQUENCE IF NOT EXISTS \(g)_seq;
            CREATE TABLE IF NOT EXISTS \(g) (
              id bigint NOT NULL DEFAULT NEXTVAL('\(g)_seq'),
              gid varchar(128) NOT NULL,
              trans_type varchar(45) not null,
              status varchar(45) NOT NULL,
              query_prepared varchar(1024) NOT NULL,
              protocol varchar(45) not null,
              create_time timestamp(0) with time zone DEFAULT NULL,
              update_time timestamp(0) with time zone DEFAULT NULL,
              finish_time timestamp(0) with time zone DEFAULT NULL,
              rollback_time timestamp(0) with time zone DEFAULT NULL,
              options varchar(1024) DEFAULT '',
              custom_data varchar(1024) DEFAULT '',
              next_cron_interval int default null,
              next_cron_time timestamp(0) with time zone default null,
              owner varchar(128) not null default '',
              ext_data text,
              result varchar(1024) DEFAULT '',
              rollback_reason varchar(1024) DEFAULT '',
              PRIMARY KEY (id),
              CONSTRAINT gid UNIQUE (gid)
            );
            CREATE INDEX IF NOT EXISTS owner ON \(g)(owner);
            CREATE INDEX IF NOT EXISTS status_next_cron_time ON \(g) (status, next_cron_time);
            CREATE SEQUENCE IF NOT EXISTS \(b)_seq;
            CREATE TABLE IF NOT EXISTS \(b) (
              id bigint NOT NULL DEFAULT NEXTVAL('\(b)_seq'),
              gid varchar(128) NOT NULL,
              url varchar(1024) NOT NULL,
              data TEXT,
              bin_data bytea,
              branch_id VARCHAR(128) NOT NULL,
              op varchar(45) NOT NULL,
              status varchar(45) NOT NULL,
              finish_time timestamp(0) with time zone DEFAULT NULL,
              rollback_time timestamp(0) with time zone DEFAULT NULL,
              create_time timestamp(0) with time zone DEFAULT NULL,
              update_time timestamp(0) with time zone DEFAULT NULL,
              PRIMARY KEY (id),
              CONSTRAINT gid_branch_uniq UNIQUE (gid, branch_id, op)
            );
            CREATE SEQUENCE IF NOT EXISTS \(t.kv)_seq;
            CREATE TABLE IF NOT EXISTS \(t.kv) (
              id bigint NOT NULL DEFAULT NEXTVAL('\(t.kv)_seq'),
              cat varchar(45) NOT NULL,
              k varchar(128) NOT NULL,
              v TEXT,
              version bigint default 1,
              create_time timestamp(0) with time zone DEFAULT NULL,
              update_time timestamp(0) with time zone DEFAULT NULL,
              PRIMARY KEY (id),
              CONSTRAINT uniq_k UNIQUE(cat, k)
            );
            """,
            // 2: the cron claim reads due rows in next_cron_time order; this partial index holds only unfinished
            // rows, so it stays small however many finished ones are kept.
            """
            CREATE INDEX IF NOT EXISTS \(gBare)_due ON \(g) (next_cron_time) WHERE status IN ('prepared', 'aborting', 'submitted');
            """,
            // 3: retention (Store.FinishedDataExpire) deletes finished rows oldest first.
            """
            CREATE INDEX IF NOT EXISTS \(gBare)_finished ON \(g) (update_time) WHERE status IN ('succeed', 'failed');
            """,
            // 4: the error of a transaction's last failed round (ours; DTM reads its columns by name and ignores
            // this one), for the console's attention view.
            """
            ALTER TABLE \(g) ADD COLUMN IF NOT EXISTS last_error varchar(1024) NOT NULL DEFAULT '';
            """,
        ]
    }

    static var currentVersion: Int { migrations(.dtm).count }

    /// A migration's statements, one by one (the extended protocol takes one statement at a time).
    static func statements(_ migration: String) -> [String] {
        migration.split(separator: ";").map { String($0.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()) }
            .filter { !$0.isEmpty }
    }

    /// Serializes migrations of coordinators starting together (any constant; ours).
    static let migrationLock: Int64 = 0x5377_6966_7444_544D

    /// The version table, beside the global table.
    static func versionTable(_ t: PostgresTables) -> String { PostgresTables.besideGlobal(t.global, "swift_dtm_schema") }

    /// `-r`: what DTM's script drops, our version table and the sequences, so that ids start again at 1.
    static func drop(_ t: PostgresTables) -> String {
        """
        DROP TABLE IF EXISTS \(t.global); DROP TABLE IF EXISTS \(t.branch); DROP TABLE IF EXISTS \(t.kv);
        DROP TABLE IF EXISTS \(versionTable(t));
        DROP SEQUENCE IF EXISTS \(t.global)_seq; DROP SEQUENCE IF EXISTS \(t.branch)_seq; DROP SEQUENCE IF EXISTS \(t.kv)_seq;
        """
    }
}
