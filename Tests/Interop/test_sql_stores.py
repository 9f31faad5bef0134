"""The PostgreSQL and MySQL stores against a real PostgreSQL / MariaDB, real swift-dtm processes and the real HTTP
branch service. Every test runs on both (ids `[postgres]` and `[mysql]`).

These tests always store in what they test, whatever DTM_TEST_STORE says: they start their own private server
(`pg_harness.PostgresCluster`, `mysql_harness.MySQLServer`: one per store for the module and one more for the restart
test, which stops its server) and point each swift-dtm server at a namespace of it — a schema of the cluster
(STORE_SCHEMA) or a database of the MariaDB server (STORE_DB) — with STORE_DRIVER and DTM's other STORE_* variables.
What differs between the stores (DTM's DDL, how DTM writes times, the SQL dialect) is in `Postgres` and `MySQL` below.

1. A database DTM created (DTM's DDL, rows as DTM writes them: on PostgreSQL times with a +08 offset, on MySQL
   `datetime` in the local time of a coordinator running with TZ=Asia/Shanghai) is read as it is and driven to the end
   by the cron loop; the rows are updated in place and the KV row is served.
2. Two coordinators started at the same moment on a namespace that does not exist yet: both come up (the migration
   runs once, under an advisory lock / GET_LOCK), give the same answers and finish each other's transactions.
3. Sixty due sagas inserted by hand, three coordinators: every one finishes, and no branch is ever called twice at
   once (claiming with FOR UPDATE SKIP LOCKED and a lease is exclusive).
4. The database stopped (normal shutdown) under load and started again: submits fail fast while it is down,
   /api/ping answers, the coordinators reconnect by themselves and no acknowledged saga is lost.
5. `-r` drops and recreates the tables.
6. Values that DTM's columns cannot hold (too long, NUL characters; on MySQL a branch body over BLOB's 65,535 bytes)
   get a 400 naming the field, and the server keeps serving.
7. Rows the server cannot read (unknown trans_type / status, as a hand edit leaves them) are set aside and reported,
   and do not stop the cron loop.
8. A branch call longer than RetryInterval (14 s, with the defaults and a client retry_interval of 1) on two and on
   three coordinators: no other coordinator calls the same branch op while it runs, whether the round was the
   submit's or one the cron loop claimed (the round holds its lease for the call's timeout and renews it).

Expected behaviour: dtm-spec §2, §4, §8.2, §9, §11.2. When a test fails, the captured stdout of its teardown holds
the tail of every server's log and of the database server's log.
"""

import base64
import json
import os
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests

import mysql_harness
import pg_harness
from conftest import DtmServer, Response, _server_binary

PLUS8 = timezone(timedelta(hours=8))  # Asia/Shanghai, where the DTM that wrote the rows of test 1 ran
SETTLE_SECONDS = 1.5  # keep watching after a final state, to catch late or duplicate branch calls


def parse_time(text):
    return datetime.fromisoformat(text)


def call_summary(calls):
    return [(c.name, c.query.get("branch_id"), c.query.get("op")) for c in calls]


def branch_rows(answer):
    return [(b.get("branch_id"), b.get("op"), b.get("status")) for b in answer["branches"]]


def submit(server, body, timeout=10):
    return requests.post(server.api + "/submit", json=body, timeout=timeout)


def saga_body(busi, gid, prefix, payloads, wait_result=False, **extra):
    steps = [
        {"action": busi.url("%sAction%d" % (prefix, i + 1)), "compensate": busi.url("%sCompensate%d" % (prefix, i + 1))}
        for i in range(len(payloads))
    ]
    body = {"gid": gid, "trans_type": "saga", "steps": steps, "payloads": payloads, "wait_result": wait_result}
    body.update(extra)
    return body


# ----------------------------------------------------------------------------------------------------------------
# The two stores
# ----------------------------------------------------------------------------------------------------------------


class Store:
    """A store under test: its private server (`server`, started for the module) and what differs between stores,
    set by `Postgres` and `MySQL` below.

    Each swift-dtm server gets a namespace of its own (`new_namespace`): a schema (PostgreSQL) or a database (MySQL).
    `sql` / `rows` run SQL in a namespace (or, with none, outside every namespace) on the module's server or on
    `on`."""

    def __init__(self):
        self.server = self.start_server()

    def start_server(self):
        return self.SERVER().start()

    def new_namespace(self):
        return self.NEW_NAMESPACE()

    def new_gid(self, tag):
        return "%s-%s-%s" % (self.GID_PREFIX, tag, uuid.uuid4().hex[:16])

    def rows(self, sql, namespace=None, on=None):
        out = self.sql(sql, namespace, on).rstrip("\n")
        return [line.split(self.COLUMN_SEPARATOR) for line in out.split("\n")] if out.strip() else []

    def q(self, s):
        """An SQL string literal: quotes doubled (and on MySQL backslashes escaped)."""
        if self.BACKSLASH_ESCAPES:
            s = s.replace("\\", "\\\\")
        return "'" + s.replace("'", "''") + "'"

    def dtm_time(self, dt):
        """A time as DTM writes it (`DTM_TIME_FORMAT`), in the zone of the DTM that wrote test 1's rows."""
        return self.q(dt.astimezone(PLUS8).strftime(self.DTM_TIME_FORMAT))

    @staticmethod
    def parse_stored_time(text):
        """A time the columns hold: with its offset (PostgreSQL), or a local time of test 1's coordinators (MySQL)."""
        t = datetime.fromisoformat(text)
        return t if t.tzinfo else t.replace(tzinfo=PLUS8)

    def blob(self, data):
        return self.BLOB % data.hex()

    def now(self, seconds=0):
        """The database's time now, `seconds` later (on MySQL in the zone of the server, which coordinators share)."""
        return self.NOW % seconds

    def index_names(self, ns):
        return {r[0] for r in self.rows(self.INDEXES % ns)}

    def dtm_ddl(self, ns):
        """DTM's DDL (`DTM_DDL`) for the namespace `ns`."""
        return self.DTM_DDL.format(ns=ns)

    def dtm_rows(self, ns, gid, trans_type, status, options, custom_data, created, next_cron, ext_data, branches):
        """The INSERTs DTM makes for a transaction and its branch rows [(branch_id, op, url, payload)], in order."""
        t = self.dtm_time(created)
        sql = [
            "INSERT INTO {ns}.trans_global (gid, trans_type, status, query_prepared, protocol, create_time, update_time, "
            "options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason) VALUES "
            "({gid}, {type}, {status}, '', 'http', {t}, {t}, {opts}, {custom}, 10, {nct}, '', {ext}, '', '');".format(
                ns=ns,
                gid=self.q(gid),
                type=self.q(trans_type),
                status=self.q(status),
                t=t,
                opts=self.q(options),
                custom=self.q(custom_data),
                nct=self.dtm_time(next_cron),
                ext="NULL" if ext_data is None else self.q(ext_data),
            )
        ]
        for bid, op, url, payload in branches:
            sql.append(
                "INSERT INTO {ns}.trans_branch_op (gid, url, bin_data, branch_id, op, status, create_time, update_time) "
                "VALUES ({gid}, {url}, {data}, '{bid}', '{op}', 'prepared', {t}, {t});".format(
                    ns=ns, gid=self.q(gid), url=self.q(url), data=self.blob(payload.encode()), bid=bid, op=op, t=t
                )
            )
        return "\n".join(sql)

    def dtm_saga_rows(self, ns, busi, gid, prefix, payloads, created, next_cron, ext_data):
        """A submitted HTTP saga as DTM writes it (dtm-spec §2.6: compensate then action per step)."""
        branches = []
        for i, payload in enumerate(payloads):
            for op, name in (("compensate", "Compensate"), ("action", "Action")):
                branches.append(("%02d" % (i + 1), op, busi.url("%s%s%d" % (prefix, name, i + 1)), payload))
        return self.dtm_rows(
            ns, gid, "saga", "submitted", '{"timeout_to_fail":60,"concurrent":false}', '{"concurrent":false}', created, next_cron, ext_data,
            branches,
        )


class Postgres(Store):
    ID = "postgres"
    LABEL = "PostgreSQL"
    GID_PREFIX = "pg"
    SERVER = pg_harness.PostgresCluster
    NEW_NAMESPACE = staticmethod(pg_harness.new_schema)
    COLUMN_SEPARATOR = "|"
    TRUE, FALSE = "t", "f"
    BACKSLASH_ESCAPES = False
    # As DTM's Go driver may write a time: whole seconds with a +08 offset. The coordinators' zone does not matter.
    DTM_TIME_FORMAT = "%Y-%m-%d %H:%M:%S+08"
    DTM_ENV = {}
    BLOB = "decode('%s', 'hex')"
    NOW = "now() + interval '%d seconds'"
    INDEXES = "SELECT indexname FROM pg_indexes WHERE schemaname = '%s'"

    def sql(self, sql, namespace=None, on=None):
        """psql -At, in the schema `namespace` (its search_path)."""
        if namespace is None:
            return (on or self.server).psql(sql)
        out = (on or self.server).psql("SET search_path TO %s;\n%s" % (namespace, sql))
        return out[4:] if out.startswith("SET\n") else out

    # DTM's sqls/dtmsvr.storage.postgres.sql, in schema `ns`.
    DTM_DDL = """
CREATE SCHEMA {ns};
CREATE SEQUENCE {ns}.trans_global_seq;
CREATE TABLE {ns}.trans_global (
  id bigint NOT NULL DEFAULT NEXTVAL ('{ns}.trans_global_seq'),
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
create index if not EXISTS owner on {ns}.trans_global(owner);
create index if not EXISTS status_next_cron_time on {ns}.trans_global (status, next_cron_time);
CREATE SEQUENCE {ns}.trans_branch_op_seq;
CREATE TABLE IF NOT EXISTS {ns}.trans_branch_op (
  id bigint NOT NULL DEFAULT NEXTVAL ('{ns}.trans_branch_op_seq'),
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
CREATE SEQUENCE {ns}.kv_seq;
CREATE TABLE IF NOT EXISTS {ns}.kv (
  id bigint NOT NULL DEFAULT NEXTVAL ('{ns}.kv_seq'),
  cat varchar(45) NOT NULL,
  k varchar(128) NOT NULL,
  v TEXT,
  version bigint default 1,
  create_time timestamp(0) with time zone DEFAULT NULL,
  update_time timestamp(0) with time zone DEFAULT NULL,
  PRIMARY KEY (id),
  CONSTRAINT uniq_k UNIQUE(cat, k)
);
"""


class MySQL(Store):
    ID = "mysql"
    LABEL = "MariaDB"
    GID_PREFIX = "my"
    SERVER = mysql_harness.MySQLServer
    NEW_NAMESPACE = staticmethod(mysql_harness.new_database)
    COLUMN_SEPARATOR = "\t"
    TRUE, FALSE = "1", "0"
    BACKSLASH_ESCAPES = True
    # As DTM writes a time with TZ=Asia/Shanghai: a `datetime` of whole seconds in local time, no zone. Test 1's
    # coordinators run in that zone too (gorm's DSN: loc=Local); had the local times been read in another zone, the
    # transactions would be hours old or in the future.
    DTM_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
    DTM_ENV = {"TZ": "Asia/Shanghai"}
    BLOB = "X'%s'"
    NOW = "NOW() + INTERVAL %d SECOND"
    INDEXES = "SELECT DISTINCT CONCAT(table_name, '.', index_name) FROM information_schema.statistics WHERE table_schema = '%s'"

    def sql(self, sql, namespace=None, on=None):
        """The mariadb client (tab-separated, no column names), in the database `namespace`."""
        return (on or self.server).sql(sql, namespace)

    # DTM's sqls/dtmsvr.storage.mysql.sql, for database `ns` (the `drop table` lines left out: the database is new).
    DTM_DDL = """
CREATE DATABASE IF NOT EXISTS {ns} /*!40100 DEFAULT CHARACTER SET utf8mb4 */;
CREATE TABLE if not EXISTS {ns}.trans_global (
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
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE IF NOT EXISTS {ns}.trans_branch_op (
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
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE IF NOT EXISTS {ns}.kv (
  `id` bigint(22) NOT NULL AUTO_INCREMENT,
  `cat` varchar(45) NOT NULL COMMENT 'the category of this data',
  `k` varchar(128) NOT NULL,
  `v` TEXT,
  `version` bigint(22) default 1 COMMENT 'version of the value',
  create_time datetime default NULL,
  update_time datetime DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE key `uniq_k`(`cat`, `k`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
"""


# ----------------------------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def binary():
    b = _server_binary()
    if not (b.is_file() and os.access(b, os.X_OK)):
        pytest.fail("dtm-server binary not found or not executable at %s; build it or set DTM_SERVER_BIN" % b, pytrace=False)
    return b


@pytest.fixture(scope="module", params=[Postgres, MySQL], ids=lambda c: c.ID)
def store(request):
    """The store under test, with a private server for this module (independent of DTM_TEST_STORE)."""
    s = request.param()
    try:
        yield s
    finally:
        s.server.destroy()


@pytest.fixture
def servers(binary, tmp_path, store):
    """Starts swift-dtm servers: servers(namespace, on=<server>, reset=False, env={...}) -> a started DtmServer.

    `on` defaults to the module's database server; `reset` adds the -r flag; `env` overrides the environment. All
    are stopped at the end of the test."""
    started = []
    backends = []
    lock = threading.Lock()  # tests may start servers from several threads at once

    def start(namespace, on=None, reset=False, env=None):
        on = on or store.server
        with lock:
            if on not in backends:
                backends.append(on)
            workdir = tmp_path / ("dtm-%d" % len(started))
            workdir.mkdir()
            started.append(None)  # reserves the number
        program = binary
        if reset:
            # DtmServer starts the binary without arguments: a wrapper that execs it with -r (same PID).
            program = workdir / "dtm-server-r.sh"
            program.write_text('#!/bin/sh\nexec "%s" -r "$@"\n' % binary)
            program.chmod(0o755)
        extra = on.server_env(namespace)
        extra.update(env or {})
        server = DtmServer(program, workdir, extra_env=extra)
        with lock:
            started[started.index(None)] = server
        server.start()
        return server

    try:
        yield start
    finally:
        # Printed into the captured output, which pytest shows only for failing tests.
        for i, s in enumerate(x for x in started if x is not None):
            print("===== dtm-server #%d (%s) =====\n%s" % (i, s.base_url, s.log_tail(12000)))
            s.stop()
        for b in backends:
            print("===== %s (port %d) =====\n%s" % (store.LABEL, b.port, b.log_tail()))


# ----------------------------------------------------------------------------------------------------------------
# 1. A database DTM created
# ----------------------------------------------------------------------------------------------------------------


def test_database_created_by_dtm_is_read_and_driven_to_the_end(store, servers, busi):
    ns = store.new_namespace()
    store.sql(store.dtm_ddl(ns))
    now = datetime.now(timezone.utc)
    created = (now - timedelta(seconds=5)).replace(microsecond=0)  # recent: timeout_to_fail 60 is not reached
    next_cron = now - timedelta(seconds=30)
    ok, bad = store.new_gid("dtm-ok"), store.new_gid("dtm-fail")
    ok_payloads = ['{"amount":30,"step":1}', '{"amount":30,"step":2}']
    bad_payloads = ['{"amount":40,"step":1}', '{"amount":40,"step":2}']
    busi.on("S1Action2", Response(409, {"dtm_result": "FAILURE"}), gid=bad)
    # A TCC DTM prepared a minute ago whose client went away: past DTM's default TimeoutToFail (35 s), so the cron
    # loop aborts it and cancels its branches, last registered first (dtm-spec §8.4).
    tcc_gid = store.new_gid("dtm-tcc")
    tcc_created = (now - timedelta(seconds=60)).replace(microsecond=0)
    tcc_branches = [
        (bid, op, busi.url("S1%s%s" % (op.capitalize(), bid)), '{"tcc":"%s"}' % bid)
        for bid in ("01", "02")
        for op in ("cancel", "confirm")
    ]
    topic_value = json.dumps([{"url": busi.url("TopicSubscriber"), "remark": ""}], separators=(",", ":"))
    store.sql(
        store.dtm_saga_rows(ns, busi, ok, "S1", ok_payloads, created, next_cron, None)
        + "\n"
        + store.dtm_saga_rows(ns, busi, bad, "S1", bad_payloads, created, next_cron, "")
        + "\n"
        + store.dtm_rows(ns, tcc_gid, "tcc", "prepared", '{"concurrent":false}', "", tcc_created, next_cron, "", tcc_branches)
        + "\nINSERT INTO {ns}.kv (cat, k, v, version, create_time, update_time) VALUES ('topics', 'topic1', {v}, 1, {t}, {t});".format(
            ns=ns, v=store.q(topic_value), t=store.dtm_time(created)
        )
    )
    global_ids = dict(store.rows("SELECT gid, id FROM trans_global", ns))
    branch_ids_before = store.rows("SELECT id, gid, branch_id, op FROM trans_branch_op ORDER BY id", ns)
    kv_before = store.rows("SELECT id, cat, k, v, version, create_time, update_time FROM kv", ns)
    indexes_before = store.index_names(ns)

    server = servers(ns, env=store.DTM_ENV)  # not -r: migrations only

    final_ok = server.wait_for_status(ok, "succeed", timeout=20)
    final_bad = server.wait_for_status(bad, "failed", timeout=20)
    final_tcc = server.wait_for_status(tcc_gid, "failed", timeout=20)
    time.sleep(SETTLE_SECONDS)

    # --- what the query API shows -------------------------------------------------------------------------
    for gid, answer, payloads, statuses in (
        (ok, final_ok, ok_payloads, ["prepared", "succeed", "prepared", "succeed"]),
        (bad, final_bad, bad_payloads, ["succeed", "succeed", "succeed", "failed"]),
    ):
        t = answer["transaction"]
        assert t["gid"] == gid and t["trans_type"] == "saga" and t["protocol"] == "http", t
        assert t["id"] == int(global_ids[gid]), (t, global_ids)
        # DTM's time was read as the same instant (and it was: the saga did not time out).
        assert parse_time(t["create_time"]) == created, (t["create_time"], created.isoformat())
        assert branch_rows(answer) == [
            ("01", "compensate", statuses[0]),
            ("01", "action", statuses[1]),
            ("02", "compensate", statuses[2]),
            ("02", "action", statuses[3]),
        ], answer
        for b, (name, i) in zip(answer["branches"], (("Compensate", 0), ("Action", 0), ("Compensate", 1), ("Action", 1))):
            assert b["url"] == busi.url("S1%s%d" % (name, i + 1)), b
            assert base64.b64decode(b["bin_data"]).decode() == payloads[i], b
    assert "S1Action2" in final_bad["transaction"].get("rollback_reason", ""), final_bad["transaction"]
    t = final_tcc["transaction"]
    assert (t["trans_type"], t["id"]) == ("tcc", int(global_ids[tcc_gid])), t
    assert parse_time(t["create_time"]) == tcc_created, (t["create_time"], tcc_created.isoformat())
    assert "timeout" in t.get("rollback_reason", "").lower(), t
    assert branch_rows(final_tcc) == [("01", "cancel", "succeed"), ("01", "confirm", "prepared"), ("02", "cancel", "succeed"), ("02", "confirm", "prepared")], final_tcc
    calls = busi.calls(tcc_gid)
    assert call_summary(calls) == [("S1Cancel02", "02", "cancel"), ("S1Cancel01", "01", "cancel")], calls
    for c in calls:
        assert c.method == "POST" and c.query == {"gid": tcc_gid, "trans_type": "tcc", "branch_id": c.query["branch_id"], "op": "cancel"}, c
        assert c.body == '{"tcc":"%s"}' % c.query["branch_id"], c

    # --- what the branch service received -----------------------------------------------------------------
    for gid, payloads, expected in (
        (ok, ok_payloads, [("S1Action1", "01", "action"), ("S1Action2", "02", "action")]),
        (
            bad,
            bad_payloads,
            [
                ("S1Action1", "01", "action"),
                ("S1Action2", "02", "action"),
                ("S1Compensate2", "02", "compensate"),
                ("S1Compensate1", "01", "compensate"),
            ],
        ),
    ):
        calls = busi.calls(gid)
        assert call_summary(calls) == expected, calls
        for c in calls:
            assert c.method == "POST", c
            assert c.query == {"gid": gid, "trans_type": "saga", "branch_id": c.query["branch_id"], "op": c.query["op"]}, c
            assert c.body == payloads[int(c.query["branch_id"]) - 1], c

    # --- KV (dtm-spec §4.14) ------------------------------------------------------------------------------
    r = requests.get(server.api + "/queryKV", params={"cat": "topics", "key": "topic1"}, timeout=5)
    assert r.status_code == 200, (r.status_code, r.text)
    kv = r.json()["kv"]
    assert len(kv) == 1, r.text
    assert (kv[0]["id"], kv[0]["cat"], kv[0]["k"], kv[0]["v"], kv[0]["version"]) == (
        int(kv_before[0][0]),
        "topics",
        "topic1",
        topic_value,
        1,
    ), kv
    assert parse_time(kv[0]["create_time"]) == created, kv

    # --- the rows were updated in place -------------------------------------------------------------------
    rows = store.rows("SELECT gid, id, status, owner <> '', finish_time IS NOT NULL, rollback_time IS NOT NULL FROM trans_global ORDER BY id", ns)
    assert sorted((r[0], r[1]) for r in rows) == sorted(global_ids.items()), rows
    by_gid = {r[0]: r[2:] for r in rows}
    T, F = store.TRUE, store.FALSE
    assert by_gid[ok] == ["succeed", T, T, F], rows  # owner set by the cron claim
    assert by_gid[bad] == ["failed", T, F, T], rows
    assert by_gid[tcc_gid] == ["failed", T, F, T], rows
    branch_ids_after = store.rows("SELECT id, gid, branch_id, op FROM trans_branch_op ORDER BY id", ns)
    assert branch_ids_after == branch_ids_before, (branch_ids_before, branch_ids_after)
    assert store.rows("SELECT id, cat, k, v, version, create_time, update_time FROM kv", ns) == kv_before
    # Times written back are times as DTM writes them (on MySQL: local times of the coordinator's zone).
    finish = store.rows("SELECT finish_time FROM trans_global WHERE gid = %s" % store.q(ok), ns)[0][0]
    assert abs((store.parse_stored_time(finish) - datetime.now(timezone.utc)).total_seconds()) < 60, finish
    versions = store.rows("SELECT version FROM swift_dtm_schema", ns)
    assert len(versions) == 1 and int(versions[0][0]) > 0, versions
    indexes_after = store.index_names(ns)
    assert indexes_before < indexes_after, (sorted(indexes_before), sorted(indexes_after))
    assert server.is_running()


# ----------------------------------------------------------------------------------------------------------------
# 2. Two coordinators on one schema or database
# ----------------------------------------------------------------------------------------------------------------


def test_two_coordinators_share_one_store(store, servers, busi):
    ns = store.new_namespace()
    # Started at the same moment on a namespace that does not exist yet: both create / migrate it (serialized by the
    # migration's lock) and come up.
    started, errors = [None, None], []

    def start(i):
        try:
            started[i] = servers(ns)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and all(started), errors
    a, b = started
    coordinators = (a, b)
    payloads = ['{"amount":1}', '{"amount":2}']

    sagas = []
    for i, wait in enumerate((True, True, False, False, True, False)):
        src, other = coordinators[i % 2], coordinators[1 - i % 2]
        gid = store.new_gid("two-%d" % i)
        r = submit(src, saga_body(busi, gid, "S2", payloads, wait_result=wait))
        assert r.status_code == 200, (r.status_code, r.text)
        if wait:
            # committed before the answer: the other coordinator already sees the final status
            t = other.query(gid)["transaction"]
            assert t is not None and t["status"] == "succeed", (gid, t)
        sagas.append(gid)

    # ONGOING first: the in-process round stops, a cron loop (either coordinator) finishes it.
    ongoing_gid = store.new_gid("two-ongoing")
    busi.on("S2Action1", Response(425, {"dtm_result": "ONGOING"}), Response(200, {"dtm_result": "SUCCESS"}), gid=ongoing_gid)
    r = submit(a, saga_body(busi, ongoing_gid, "S2", payloads, retry_interval=1))
    assert r.status_code == 200, (r.status_code, r.text)
    sagas.append(ongoing_gid)

    for gid in sagas:
        b.wait_for_status(gid, "succeed", timeout=20)
    time.sleep(SETTLE_SECONDS)
    for gid in sagas:
        qa, qb = a.query(gid), b.query(gid)
        assert qa == qb, (gid, qa, qb)
        assert qa["transaction"]["status"] == "succeed", qa
        expected = [("S2Action1", "01", "action"), ("S2Action2", "02", "action")]
        if gid == ongoing_gid:
            expected.insert(0, ("S2Action1", "01", "action"))
        assert call_summary(busi.calls(gid)) == expected, busi.calls(gid)
    owner = store.rows("SELECT owner FROM trans_global WHERE gid = %s" % store.q(ongoing_gid), ns)
    assert owner and owner[0][0] != "", "the ONGOING saga was not finished by a cron claim (owner is empty)"
    assert store.rows("SELECT count(*) FROM swift_dtm_schema", ns) == [["1"]], "the migration ran more than once"

    # TCC: prepare and register on one coordinator, submit / abort on the other.
    def register(server, gid, bid):
        body = {
            "gid": gid,
            "trans_type": "tcc",
            "branch_id": bid,
            "status": "prepared",
            "data": json.dumps({"branch": bid}),
            "confirm": busi.url("S2Confirm%s" % bid),
            "cancel": busi.url("S2Cancel%s" % bid),
        }
        r = requests.post(server.api + "/registerBranch", json=body, timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)

    tcc_ok = store.new_gid("two-tcc")
    r = requests.post(a.api + "/prepare", json={"gid": tcc_ok, "trans_type": "tcc"}, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text)
    register(a, tcc_ok, "01")
    register(a, tcc_ok, "02")
    r = submit(b, {"gid": tcc_ok, "trans_type": "tcc", "wait_result": True})
    assert r.status_code == 200, (r.status_code, r.text)
    a.wait_for_status(tcc_ok, "succeed", timeout=15)

    tcc_abort = store.new_gid("two-tcc-abort")
    r = requests.post(b.api + "/prepare", json={"gid": tcc_abort, "trans_type": "tcc"}, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text)
    register(a, tcc_abort, "01")
    register(b, tcc_abort, "02")
    r = requests.post(b.api + "/abort", json={"gid": tcc_abort, "trans_type": "tcc", "rollback_reason": "user"}, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text)
    a.wait_for_status(tcc_abort, "failed", timeout=15)
    time.sleep(SETTLE_SECONDS)

    for gid, op in ((tcc_ok, "confirm"), (tcc_abort, "cancel")):
        calls = busi.calls(gid)
        assert sorted(call_summary(calls)) == sorted(
            [("S2%s01" % op.capitalize(), "01", op), ("S2%s02" % op.capitalize(), "02", op)]
        ), calls
        for c in calls:
            assert c.json() == {"branch": c.query["branch_id"]}, c
        assert a.query(gid) == b.query(gid)
    assert b.query(tcc_abort)["transaction"]["rollback_reason"] == "user"


# ----------------------------------------------------------------------------------------------------------------
# 3. Claiming is shared and exclusive
# ----------------------------------------------------------------------------------------------------------------


class TimedResponse(Response):
    """A response that records (key, start, end) when it is about to be written (after its delay)."""

    def __init__(self, log, call, status, body, delay):
        super().__init__(status, body, delay)
        self.log = log
        self.call = call

    def encode(self):
        c = self.call
        self.log.append(((c.gid, c.query.get("branch_id"), c.query.get("op")), c.time, time.monotonic(), self.status))
        return super().encode()


def overlapping_calls(log):
    """(key, start, end, start, end) of every two calls of one (gid, branch_id, op) that overlapped in time."""
    by_key = {}
    for key, start, end, _ in list(log):
        by_key.setdefault(key, []).append((start, end))
    overlaps = []
    for key, spans in by_key.items():
        spans.sort()
        for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
            if s2 < e1:
                overlaps.append((key, round(s1, 3), round(e1, 3), round(s2, 3), round(e2, 3)))
    return overlaps, by_key


def test_claiming_is_shared_and_exclusive(store, servers, busi):
    ns = store.new_namespace()
    # debug: the cron loop logs "cron claimed" with the gid, which tells which coordinator claimed what
    coordinators = [servers(ns, env={"LOG_LEVEL": "debug"}) for _ in range(3)]
    count = 60
    delay = 0.3  # rounds of ~0.6 s: one coordinator alone would need several passes, so all of them take part
    tag = uuid.uuid4().hex[:10]
    gids = ["%s-claim-%s-%03d" % (store.GID_PREFIX, tag, i) for i in range(count)]
    ongoing = set(gids[::4])  # their second action answers ONGOING once: claimed again a second later
    log = []

    def timed(status, body):
        return lambda call: TimedResponse(log, call, status, body, delay)

    ok = timed(200, {"dtm_result": "SUCCESS"})
    for name in ("S3Action1", "S3Action2", "S3Compensate1", "S3Compensate2"):
        busi.on(name, ok)
    for gid in ongoing:
        busi.on("S3Action2", timed(425, {"dtm_result": "ONGOING"}), ok, gid=gid)

    store.sql(
        "INSERT INTO trans_global (gid, trans_type, status, query_prepared, protocol, create_time, update_time, options, "
        "custom_data, next_cron_interval, next_cron_time, owner, ext_data) VALUES\n"
        + ",\n".join(
            "(%s, 'saga', 'submitted', '', 'http', %s, %s, '{\"retry_interval\":1,\"concurrent\":false}', '{\"concurrent\":false}', 1, %s, '', '')"
            % (store.q(gid), store.now(), store.now(), store.now(-2))
            for gid in gids
        )
        + ";\nINSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, create_time, update_time) VALUES\n"
        + ",\n".join(
            "(%s, %s, %s, '%s', '%s', 'prepared', %s, %s)"
            % (store.q(gid), store.q(busi.url(url)), store.blob(b'{"n":%d}' % i), bid, op, store.now(), store.now())
            for i, gid in enumerate(gids)
            for bid, op, url in (("01", "compensate", "S3Compensate1"), ("01", "action", "S3Action1"), ("02", "compensate", "S3Compensate2"), ("02", "action", "S3Action2"))
        )
        + ";",
        ns,
    )

    def finished():
        return store.rows("SELECT count(*) FROM trans_global WHERE status = 'succeed'", ns) == [[str(count)]]

    deadline = time.monotonic() + 40
    while not finished():
        if time.monotonic() > deadline:
            left = store.sql("SELECT gid, status, next_cron_time, owner FROM trans_global WHERE status <> 'succeed'", ns)
            pytest.fail("not every saga finished within 40 s; unfinished:\n%s" % left)
        time.sleep(0.2)
    time.sleep(SETTLE_SECONDS)

    overlaps, by_key = overlapping_calls(log)
    assert not overlaps, "overlapping calls of one branch op: %s" % overlaps

    wrong = []
    for i, gid in enumerate(gids):
        got = sorted((k[1], k[2], len(v)) for k, v in by_key.items() if k[0] == gid)
        want = [("01", "action", 1), ("02", "action", 2 if gid in ongoing else 1)]
        if got != want:
            wrong.append((gid, got))
        calls = busi.calls(gid)
        if any(c.body != '{"n":%d}' % i for c in calls):
            wrong.append((gid, "bodies", [c.body for c in calls]))
    assert not wrong, "branch calls other than each action once (twice after ONGOING): %s" % wrong[:10]
    assert all(c.is_running() for c in coordinators)

    # Shared: more than one coordinator claimed; every claim of a saga was by one coordinator at a time (above),
    # and the claims add up to one per round (ONGOING sagas have two rounds).
    claims = []
    for c in coordinators:
        text = c.stderr_path.read_text(errors="replace")
        claims.append([line.split("gid=", 1)[1].split()[0] for line in text.splitlines() if "cron claimed" in line and "gid=" in line])
    print("claims per coordinator: %s" % [len(c) for c in claims])
    assert sum(1 for c in claims if c) >= 2, "only one coordinator claimed anything: %s" % [len(c) for c in claims]
    claimed = sorted(g for c in claims for g in c)
    assert claimed == sorted(gids + list(ongoing)), "claims (gid, count) other than one per round: %s" % sorted(
        {(g, claimed.count(g)) for g in set(claimed)} - {(g, 2 if g in ongoing else 1) for g in gids}
    )


@pytest.mark.parametrize("count", [2, 3])
def test_a_call_longer_than_the_lease_has_one_caller(store, servers, busi, count):
    ns = store.new_namespace()
    coordinators = [servers(ns, env={"LOG_LEVEL": "debug"}) for _ in range(count)]
    slow = 14.0  # longer than RetryInterval (10 s, the default, the cron's claim) and the client's retry_interval (1 s)
    log = []

    def timed(status, body, delay):
        return lambda call: TimedResponse(log, call, status, body, delay)

    done = timed(200, {"dtm_result": "SUCCESS"}, 0)
    tag = uuid.uuid4().hex[:10]
    # The submit's own round makes the slow call; or (ONGOING first) a round the cron loop claimed makes it. Several
    # of each, submitted to every coordinator: whichever coordinator's cron loop looks, it finds one it does not run.
    submit_rounds = ["%s-lease-submit-%s-%d" % (store.GID_PREFIX, tag, i) for i in range(3)]
    cron_rounds = ["%s-lease-cron-%s-%d" % (store.GID_PREFIX, tag, i) for i in range(3)]
    for gid in submit_rounds:
        busi.on("LeaseAction1", timed(200, {"dtm_result": "SUCCESS"}, slow), gid=gid)
    for gid in cron_rounds:
        busi.on("LeaseAction1", timed(425, {"dtm_result": "ONGOING"}, 0), timed(200, {"dtm_result": "SUCCESS"}, slow), gid=gid)
    for name in ("LeaseAction2", "LeaseCompensate1", "LeaseCompensate2"):
        busi.on(name, done)
    for i, gid in enumerate(submit_rounds + cron_rounds):
        body = saga_body(busi, gid, "Lease", ["{}", "{}"], retry_interval=1, request_timeout=20)
        r = submit(coordinators[i % count], body)
        assert r.status_code == 200, r.text

    deadline = time.monotonic() + 60
    for gid in submit_rounds + cron_rounds:
        while coordinators[0].query(gid)["transaction"]["status"] != "succeed":
            assert time.monotonic() < deadline, "not finished within 60 s: %s" % coordinators[0].query(gid)
            time.sleep(0.2)
    time.sleep(SETTLE_SECONDS)

    overlaps, by_key = overlapping_calls(log)
    print("calls (gid, branch, op): start-end: %s" % {k: [(round(a, 1), round(b, 1)) for a, b in v] for k, v in by_key.items()})
    assert not overlaps, "one branch op called by two rounds at once: %s" % overlaps
    for gid in submit_rounds + cron_rounds:
        calls = sorted((k[1], k[2], len(v)) for k, v in by_key.items() if k[0] == gid)
        assert calls == [("01", "action", 2 if gid in cron_rounds else 1), ("02", "action", 1)], (gid, calls)
    assert all(c.is_running() for c in coordinators)


# ----------------------------------------------------------------------------------------------------------------
# 4. The database restarted under load
# ----------------------------------------------------------------------------------------------------------------


def test_database_restart_under_load(store, servers, busi):
    own = store.start_server()
    try:
        _restart_under_load(store, own, servers, busi)
    finally:
        own.destroy()


def _restart_under_load(store, own, servers, busi):
    ns = store.new_namespace()
    coordinators = [servers(ns, on=own), servers(ns, on=own)]
    payloads = ['{"amount":7}', '{"amount":8}']
    records = []  # (start, end, coordinator, gid, wait, status or None, text or exception)
    stop = threading.Event()
    tag = uuid.uuid4().hex[:8]
    # a slow second step: some rounds are in flight when the database stops, so the cron loop has to finish them
    busi.on("S4Action2", Response(200, {"dtm_result": "SUCCESS"}, 0.3))

    def client(ix):
        n = 0
        while not stop.is_set():
            n += 1
            gid = "%s-restart-%s-%d-%d" % (store.GID_PREFIX, tag, ix, n)
            wait = n % 2 == 0
            t0 = time.monotonic()
            try:
                # retry_interval 1: a round cut by the outage is taken up again by the cron loop soon after
                r = submit(coordinators[ix], saga_body(busi, gid, "S4", payloads, wait_result=wait, retry_interval=1))
                records.append((t0, time.monotonic(), ix, gid, wait, r.status_code, r.text[:300]))
            except requests.RequestException as e:
                records.append((t0, time.monotonic(), ix, gid, wait, None, repr(e)))
            time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(2.0)
        t_stop_begin = time.monotonic()
        own.stop("fast")
        t_stopped = time.monotonic()
        ping_problems = []
        while time.monotonic() < t_stopped + 3.0:
            for c in coordinators:
                t0 = time.monotonic()
                try:
                    r = requests.get(c.base_url + "/api/ping", timeout=2)
                    if r.status_code != 200 or r.json() != {"msg": "pong"}:
                        ping_problems.append((c.base_url, r.status_code, r.text[:200]))
                except (requests.RequestException, ValueError) as e:
                    ping_problems.append((c.base_url, repr(e), round(time.monotonic() - t0, 2)))
            time.sleep(0.3)
        t_start_begin = time.monotonic()
        own.start()
        t_started = time.monotonic()
        first_ok = None
        while time.monotonic() < t_started + 10.0 and first_ok is None:
            first_ok = next((r for r in list(records) if r[0] >= t_started and r[5] == 200), None)
            time.sleep(0.1)
        time.sleep(6.0)  # long enough to see whether submits still fail 5 s after the first success
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    assert not any(t.is_alive() for t in threads), "a client thread is stuck"

    def show(rs):
        return "\n".join(
            "%+.2fs %.2fs c%d %s wait=%s -> %s %s" % (r[0] - t_stop_begin, r[1] - r[0], r[2], r[3], r[4], r[5], r[6][:160]) for r in rs
        )

    failures = []
    hung = [r for r in records if r[5] is None]
    if hung:
        failures.append("submits without an HTTP answer (timeout / connection error):\n" + show(hung))
    before = [r for r in records if r[1] < t_stop_begin]
    if not before or any(r[5] != 200 for r in before):
        failures.append("submits before the stop that were not acknowledged:\n" + show([r for r in before if r[5] != 200]))
    during = [r for r in records if r[0] >= t_stopped and r[1] <= t_start_begin]
    if not during:
        failures.append("no submit was made while %s was down" % store.LABEL)
    bad_during = [r for r in during if r[5] is None or r[5] < 500 or r[1] - r[0] > 5.0]
    if bad_during:
        failures.append("submits while %s was down that did not get a 5xx within 5 s:\n%s" % (store.LABEL, show(bad_during)))
    if ping_problems:
        failures.append("/api/ping while %s was down: %s" % (store.LABEL, ping_problems))
    if first_ok is None:
        failures.append("no submit succeeded within 10 s after %s was started again" % store.LABEL)
    else:
        print("first acknowledged submit after the restart: %.2f s after start() returned" % (first_ok[0] - t_started))
    # Once one submit went through again, the others do too (each connection reconnects within its back-off).
    if first_ok is not None:
        late_errors = [r for r in records if r[0] >= first_ok[1] + 5.0 and r[5] != 200]
        if late_errors:
            failures.append("submits failing more than 5 s after the first success:\n" + show(late_errors))
    print("submits: %d before, %d while down, %d in all" % (len(before), len(during), len(records)))
    if first_ok is not None:
        print("errors after the first success:\n" + show([r for r in records if r[0] >= first_ok[1] and r[5] != 200]))
    print(show([r for r in records if r[1] >= t_stop_begin - 0.5 and r[0] <= t_started + 1.0]))

    acknowledged = {r[3] for r in records if r[5] == 200}
    # Every acknowledged saga, and every saga stored at all (a submit whose answer was an error may still have
    # been committed), ends succeed.
    deadline = time.monotonic() + 45
    while True:
        stored = dict(store.rows("SELECT gid, status FROM trans_global", ns, on=own))
        lost = sorted(acknowledged - set(stored))
        unfinished = sorted(g for g, st in stored.items() if st != "succeed")
        if (not unfinished and not lost) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if lost:
        failures.append("acknowledged but not stored: %s" % lost)
    if unfinished:
        failures.append(
            "not succeed 45 s after the restart: %s"
            % store.sql("SELECT gid, status, next_cron_time, next_cron_interval, owner FROM trans_global WHERE status <> 'succeed'", ns, on=own)
        )
    if not all(c.is_running() for c in coordinators):
        failures.append("a coordinator exited")
    print("sagas finished by a cron claim (owner set): %s" % store.sql("SELECT count(*) FROM trans_global WHERE owner <> ''", ns, on=own).strip())
    assert not failures, "\n\n".join(failures)
    # Saga order held: step 1 before step 2 (an action whose result was not recorded may be called again), no
    # compensation.
    for gid in acknowledged:
        steps = [c.query.get("branch_id") for c in busi.calls(gid)]
        ops = {c.op for c in busi.calls(gid)}
        assert ops == {"action"} and steps == sorted(steps) and set(steps) == {"01", "02"}, busi.calls(gid)


# ----------------------------------------------------------------------------------------------------------------
# 5. -r
# ----------------------------------------------------------------------------------------------------------------


def test_reset_flag_drops_the_data(store, servers, busi):
    ns = store.new_namespace()
    first = servers(ns)
    old = store.new_gid("reset-old")
    r = submit(first, saga_body(busi, old, "S5", ['{"a":1}'], wait_result=True))
    assert r.status_code == 200, (r.status_code, r.text)
    r = requests.get(first.api + "/subscribe", params={"topic": "reset-topic", "url": busi.url("S5Sub"), "remark": "x"}, timeout=5)
    assert r.status_code == 200, (r.status_code, r.text)
    assert first.query(old)["transaction"]["status"] == "succeed"
    first.stop()

    second = servers(ns, reset=True)
    assert second.query(old) == {"transaction": None, "branches": []}
    r = requests.get(second.api + "/queryKV", params={"cat": "topics", "key": "reset-topic"}, timeout=5)
    assert r.status_code == 200 and r.json() == {"kv": []}, (r.status_code, r.text)
    counts = store.rows("SELECT (SELECT count(*) FROM trans_global), (SELECT count(*) FROM trans_branch_op), (SELECT count(*) FROM kv)", ns)
    assert counts == [["0", "0", "0"]], counts
    versions = store.rows("SELECT version FROM swift_dtm_schema", ns)
    assert len(versions) == 1 and int(versions[0][0]) > 0, versions

    new = store.new_gid("reset-new")
    r = submit(second, saga_body(busi, new, "S5", ['{"a":2}'], wait_result=True))
    assert r.status_code == 200, (r.status_code, r.text)
    assert second.query(new)["transaction"]["status"] == "succeed"


# ----------------------------------------------------------------------------------------------------------------
# 6. Hostile / edge input
# ----------------------------------------------------------------------------------------------------------------


NUL = ("NUL", "0x0")  # how a message may name a NUL character ("NUL character", "0x0", "0x00")


def test_values_the_columns_cannot_hold_are_refused_clearly(store, servers, busi):
    """Each hostile request gets a 400 whose message names the field or the problem; the server keeps serving.

    Every answer is printed (shown with -s or when the test fails)."""
    server = servers(store.new_namespace())
    long_url = busi.url("S6Action") + "?pad=" + "x" * 1100
    outcomes = {}
    problems = []

    def attempt(name, method, path, **kwargs):
        r = requests.request(method, server.api + path, timeout=10, **kwargs)
        outcomes[name] = (r.status_code, r.text)
        return r

    def prepared_tcc(tag):
        gid = store.new_gid(tag)
        r = requests.post(server.api + "/prepare", json={"gid": gid, "trans_type": "tcc", "wait_result": True}, timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        reg = {"gid": gid, "trans_type": "tcc", "branch_id": "01", "data": "{}", "confirm": busi.url("S6C"), "cancel": busi.url("S6X")}
        r = requests.post(server.api + "/registerBranch", json=reg, timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        return gid

    tcc_gid = prepared_tcc("tcc-hostile")
    # (name, method, path, groups of words: the message must contain one word of each group, request kwargs)
    cases = [
        ("gid of 129 characters", "POST", "/submit", [("gid",), ("128",)], dict(json=saga_body(busi, "g" * 129, "S6", ['{"a":1}']))),
        (
            "branch url of 1145 characters",
            "POST",
            "/submit",
            [("url",), ("1024",)],
            dict(
                json={
                    "gid": store.new_gid("long-url"),
                    "trans_type": "saga",
                    "steps": [{"action": long_url, "compensate": busi.url("S6Compensate")}],
                    "payloads": ['{"a":1}'],
                }
            ),
        ),
        (
            "custom_data of 1100+ characters",
            "POST",
            "/submit",
            [("custom_data",), ("1024",)],
            dict(json=saga_body(busi, store.new_gid("long-custom"), "S6", ['{"a":1}'], custom_data=json.dumps({"pad": "y" * 1100}))),
        ),
        ("gid with NUL", "POST", "/submit", [("gid",), NUL], dict(json=saga_body(busi, store.new_gid("nul") + "\u0000x", "S6", ['{"a":1}']))),
        (
            "query_prepared with NUL (msg prepare)",
            "POST",
            "/prepare",
            [("query_prepared",), ("NUL",)],
            dict(
                json={
                    "gid": store.new_gid("nul-qp"),
                    "trans_type": "msg",
                    "steps": [{"action": busi.url("S6Action")}],
                    "payloads": ['{"a":1}'],
                    "query_prepared": busi.url("S6Query") + "\u0000",
                }
            ),
        ),
        (
            "registerBranch branch_id of 129 characters",
            "POST",
            "/registerBranch",
            [("branch_id",), ("128",)],
            dict(json={"gid": tcc_gid, "trans_type": "tcc", "branch_id": "b" * 129, "data": "{}", "confirm": busi.url("S6C"), "cancel": busi.url("S6X")}),
        ),
        ("subscribe topic with NUL", "GET", "/subscribe", [NUL], dict(params={"topic": "t\u0000", "url": busi.url("S6Sub"), "remark": ""})),
    ]
    if store.ID == "mysql":
        # PostgreSQL's bytea holds any body; MySQL's BLOB 65,535 bytes.
        big = saga_body(busi, store.new_gid("big"), "S6", [json.dumps({"p": "z" * 70000})])
        cases.append(("payload over BLOB's 65535 bytes", "POST", "/submit", [("bin_data",), ("65535",)], dict(json=big)))
    for name, method, path, groups, kwargs in cases:
        r = attempt(name, method, path, **kwargs)
        text = r.text.lower()
        if not (r.status_code == 400 and all(any(w.lower() in text for w in group) for group in groups)):
            problems.append("%s: HTTP %d %s (wanted a 400 naming %s)" % (name, r.status_code, r.text[:300], groups))
        if not server.is_running():
            problems.append("%s: the server exited" % name)
            break

    # A gid with NUL cannot be stored, so nothing has it: query answers as for any unknown gid, and the store is not
    # asked (PostgreSQL would refuse the parameter).
    r = attempt("query gid with NUL", "GET", "/query", params={"gid": "a\u0000b"})
    if r.status_code != 200 or r.json().get("transaction") is not None:
        problems.append("query gid with NUL: HTTP %d %s (wanted 200 with no transaction)" % (r.status_code, r.text[:300]))

    # abort with a client-given rollback_reason the column cannot hold as it is (NUL; longer than varchar(1024)):
    # either refused with a 4xx naming the problem, or accepted and stored without the NUL / cut to 1024 characters.
    for name, reason, acceptable in (
        ("abort with NUL in rollback_reason", "bad\u0000reason", lambda stored: stored == "badreason"),
        ("abort with a rollback_reason of 1100 characters", "r" * 1100, lambda stored: stored == "r" * 1024),
    ):
        gid = prepared_tcc("tcc-abort")
        r = attempt(name, "POST", "/abort", json={"gid": gid, "trans_type": "tcc", "rollback_reason": reason})
        if r.status_code == 200:
            stored = server.wait_for_status(gid, "failed", timeout=10)["transaction"].get("rollback_reason", "")
            outcomes[name] += ("stored rollback_reason %r" % (stored if len(stored) < 40 else "%d x %r" % (len(stored), stored[0])),)
            if not acceptable(stored):
                problems.append("%s: 200 but rollback_reason stored as %r" % (name, stored[:100]))
        elif not (400 <= r.status_code < 500 and "reason" in r.text.lower()):
            problems.append("%s: HTTP %d %s" % (name, r.status_code, r.text[:300]))

    # 1,017 characters of which 1,010 take four bytes fit: widths count characters (MySQL's utf8mb4 holds them).
    wide = store.new_gid("wide")
    custom = json.dumps({"x": "😀" * 1010}, ensure_ascii=False)
    r = attempt("custom_data of 1010 emoji", "POST", "/submit", json=saga_body(busi, wide, "S6", ['{"a":1}'], wait_result=True, custom_data=custom))
    if r.status_code != 200:
        problems.append("custom_data of 1010 emoji: HTTP %d %s" % (r.status_code, r.text[:300]))
    elif "😀" * 1010 not in server.query(wide)["transaction"].get("custom_data", ""):
        problems.append("custom_data of 1010 emoji did not round-trip: %s" % server.query(wide)["transaction"].get("custom_data", "")[:100])

    for name, outcome in outcomes.items():
        print("%-50s -> %r" % (name, outcome))

    # Still serving: ping, and a normal saga.
    r = requests.get(server.base_url + "/api/ping", timeout=5)
    assert r.status_code == 200 and r.json() == {"msg": "pong"}, (r.status_code, r.text)
    gid = store.new_gid("after-hostile")
    r = submit(server, saga_body(busi, gid, "S6", ['{"a":1}', '{"a":2}'], wait_result=True))
    assert r.status_code == 200, (r.status_code, r.text)
    assert server.query(gid)["transaction"]["status"] == "succeed"
    # A NUL inside a payload is fine: payloads are stored as bytes (bytea, BLOB) and forwarded byte for byte.
    gid = store.new_gid("nul-payload")
    r = submit(server, saga_body(busi, gid, "S6", ['{"a":"x\u0000y"}'], wait_result=True))
    assert r.status_code == 200, (r.status_code, r.text)
    assert server.query(gid)["transaction"]["status"] == "succeed"
    assert [c.body for c in busi.calls(gid)] == ['{"a":"x\u0000y"}'], busi.calls(gid)
    # Nothing of the refused transactions was stored, and the TCC did not get the refused branch.
    assert server.query("g" * 129)["transaction"] is None
    assert [(b["branch_id"], b["op"]) for b in server.query(tcc_gid)["branches"]] == [("01", "cancel"), ("01", "confirm")]
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------------------------------------------
# 7. Rows the server cannot read (edited by hand, or written by something newer)
# ----------------------------------------------------------------------------------------------------------------


def test_rows_the_server_cannot_read_are_set_aside(store, servers, busi):
    """A due row with an unknown trans_type is set aside (next_cron_time pushed out, logged) instead of failing
    every cron pass; a row with an unknown status is never claimed; both make `query` answer a 5xx naming the
    problem and are left out of `all`; the cron loop keeps driving the other transactions."""
    ns = store.new_namespace()
    server = servers(ns)
    weird_type, weird_status = store.new_gid("weird-type"), store.new_gid("weird-status")
    store.sql(
        """INSERT INTO trans_global (gid, trans_type, status, query_prepared, protocol, create_time, update_time, options,
             custom_data, next_cron_interval, next_cron_time, owner, ext_data)
           VALUES ({a}, 'frobnicate', 'submitted', '', 'http', {now}, {now}, '{{}}', '', 10, {due}, '', ''),
                  ({b}, 'saga', 'confused', '', 'http', {now}, {now}, '{{}}', '', 10, {due}, '', '')""".format(
            a=store.q(weird_type), b=store.q(weird_status), now=store.now(), due=store.now(-60)
        ),
        ns,
    )
    # A saga whose first attempt answers ONGOING: only the cron loop can finish it.
    gid = store.new_gid("beside-weird")
    busi.on("S7Action1", Response(425, {"dtm_result": "ONGOING"}), Response(200, {"dtm_result": "SUCCESS"}), gid=gid)
    r = submit(server, saga_body(busi, gid, "S7", ['{"a":1}'], retry_interval=1))
    assert r.status_code == 200, (r.status_code, r.text)
    server.wait_for_status(gid, "succeed", timeout=15)

    for weird, words in ((weird_type, ("frobnicate",)), (weird_status, ("confused",))):
        r = requests.get(server.api + "/query", params={"gid": weird}, timeout=5)
        assert 500 <= r.status_code < 600 and all(w in r.text for w in words + (weird,)), (r.status_code, r.text)
    r = requests.get(server.api + "/all", timeout=5)
    assert r.status_code == 200, (r.status_code, r.text)
    assert [t["gid"] for t in r.json()["transactions"]] == [gid], r.text
    pushed = store.rows("SELECT next_cron_time > %s FROM trans_global WHERE gid = %s" % (store.now(30 * 60), store.q(weird_type)), ns)
    assert pushed == [[store.TRUE]], "the unreadable due row was not set aside"
    untouched = store.rows("SELECT status, owner FROM trans_global WHERE gid = %s" % store.q(weird_status), ns)
    assert untouched == [["confused", ""]], untouched
    assert "set aside" in server.log_tail(), server.log_tail()
    assert server.is_running()
