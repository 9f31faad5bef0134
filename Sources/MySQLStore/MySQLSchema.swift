/// DTM's MySQL schema (`sqls/dtmsvr.storage.mysql.sql`: the same tables, columns, types, keys and index names,
/// utf8mb4, InnoDB), so that a database DTM created is used as it is, and what swift-dtm adds, as versioned
/// forward-only migrations recorded in `swift_dtm_schema`.
///
/// Times are DTM's `datetime`: whole seconds, local time (see `MySQLTime`).
enum MySQLSchema {
    /// Migration i brings the schema from version i to i + 1. Append only; never edit a released step. MySQL
    /// commits each schema change by itself, so each step after the first is one statement, and the version is
    /// recorded after each step.
    static func migrations(_ t: MySQLTables) -> [[String]] {
        let g = t.global
        let b = t.branch
        return [
            // 1: DTM's tables. IF NOT EXISTS: on a database DTM created this changes nothing.
            [
                """
                CREATE TABLE IF NOT EXISTS \(g) (
                  `id` bigint(22) NOT NULL AUTO_INCREMENT,
                  `gid` varchar(128) NOT NULL COMMENT 'global transaction id',
                  `trans_type` varchar(45) not null COMMENT 'transaction type: saga | xa | tcc | msg',
                  `status` varchar(12) NOT NULL COMMENT 'tranaction status: prepared | submitted | aborting | finished | rollbacked',
                  `query_prepared` varchar(1024) NOT NULL COMMENT 'url to check for msg|workflow',
                  `protocol` varchar(45) not null comment 'protocol: http | grpc | json-rpc',
                  `create_time` datetime DEFAULT NULL,
                  `update_time` datetime DEFAULT NULL,
                  `finish_time` datetime DEFAULT NULL,
                  `rollback_time` datetime DEFAULT NULL,
                  `options` varchar(1024) DEFAULT 'options for transaction like: TimeoutToFail, RequestTimeout',
                  `custom_data` varchar(1024) DEFAULT '' COMMENT 'custom data for transaction',
                  `next_cron_interval` int(11) default null comment 'next cron interval. for use of cron job',
                  `next_cron_time` datetime default null comment 'next time to process this trans. for use of cron job',
                  `owner` varchar(128) not null default '' comment 'who is locking this trans',
                  `ext_data` TEXT comment 'result for this trans. currently used in workflow pattern',
                  `result` varchar(1024) DEFAULT '' COMMENT 'rollback reason for transaction',
                  `rollback_reason` varchar(1024) DEFAULT '' COMMENT 'rollback reason for transaction',
                  PRIMARY KEY (`id`),
                  UNIQUE KEY `gid` (`gid`),
                  key `owner`(`owner`),
                  key `status_next_cron_time` (`status`, `next_cron_time`) comment 'cron job will use this index to query trans'
                ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4
                """,
                """
                CREATE TABLE IF NOT EXISTS \(b) (
                  `id` bigint(22) NOT NULL AUTO_INCREMENT,
                  `gid` varchar(128) NOT NULL COMMENT 'global transaction id',
                  `url` varchar(1024) NOT NULL COMMENT 'the url of this op',
                  `data` TEXT COMMENT 'request body, depreceated',
                  `bin_data` BLOB COMMENT 'request body',
                  `branch_id` VARCHAR(128) NOT NULL COMMENT 'transaction branch ID',
                  `op` varchar(45) NOT NULL COMMENT 'transaction operation type like: action | compensate | try | confirm | cancel',
                  `status` varchar(45) NOT NULL COMMENT 'transaction op status: prepared | succeed | failed',
                  `finish_time` datetime DEFAULT NULL,
                  `rollback_time` datetime DEFAULT NULL,
                  `create_time` datetime DEFAULT NULL,
                  `update_time` datetime DEFAULT NULL,
                  PRIMARY KEY (`id`),
                  UNIQUE KEY `gid_uniq` (`gid`, `branch_id`, `op`)
                ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4
                """,
                """
                CREATE TABLE IF NOT EXISTS \(t.kv) (
                  `id` bigint(22) NOT NULL AUTO_INCREMENT,
                  `cat` varchar(45) NOT NULL COMMENT 'the category of this data',
                  `k` varchar(128) NOT NULL,
                  `v` TEXT,
                  `version` bigint(22) default 1 COMMENT 'version of the value',
                  create_time datetime default NULL,
                  update_time datetime DEFAULT NULL,
                  PRIMARY KEY (`id`),
                  UNIQUE key `uniq_k`(`cat`, `k`)
                ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4
                """,
            ],
            // 2: the cron claim reads due rows in next_cron_time order. MySQL has no partial index: a virtual column
            // that holds next_cron_time of unfinished rows only (NULL otherwise), indexed, keeps the claim an index
            // range however many finished rows are kept. DTM writes rows by column name and ignores it.
            [
                """
                ALTER TABLE \(g) ADD COLUMN `due_at` datetime
                  AS (IF(`status` IN ('prepared', 'aborting', 'submitted'), `next_cron_time`, NULL)) VIRTUAL,
                  ADD INDEX `\(t.globalBare)_due` (`due_at`)
                """
            ],
            // 3: retention (Store.FinishedDataExpire) deletes finished rows oldest first, the same way.
            [
                """
                ALTER TABLE \(g) ADD COLUMN `finished_at` datetime
                  AS (IF(`status` IN ('succeed', 'failed'), `update_time`, NULL)) VIRTUAL,
                  ADD INDEX `\(t.globalBare)_finished` (`finished_at`)
                """
            ],
            // 4: the error of a transaction's last failed round (ours; DTM ignores it), for the attention view.
            ["ALTER TABLE \(g) ADD COLUMN `last_error` varchar(1024) NOT NULL DEFAULT ''"],
        ]
    }

    static var currentVersion: Int { migrations(.dtm).count }

    /// `-r`: what DTM's script drops, and our version table.
    static func drop(_ t: MySQLTables) -> [String] {
        [t.global, t.branch, t.kv, t.version].map { "DROP TABLE IF EXISTS \($0)" }
    }
}
