"""The MySQL store against a real MariaDB, real swift-dtm processes and the real HTTP branch service.

These tests always store in MySQL, whatever DTM_TEST_STORE says: they start their own private MariaDB server
(`mysql_harness.MySQLServer`, one for the module and one more for the restart test, which stops its server) and point
each swift-dtm server at a database of it with STORE_DRIVER=mysql and DTM's other STORE_* variables.

1. A database DTM created (DTM's DDL, rows as DTM writes them: `datetime` in the local time of a coordinator running
   with TZ=Asia/Shanghai) is read as it is and driven to the end by the cron loop; the KV row is served.
2. Two coordinators started at the same moment on a database that does not exist yet: both come up (the migration
   runs once, under GET_LOCK), give the same answers and finish each other's transactions.
3. MariaDB stopped under load and started again: submits fail fast while it is down, the coordinators reconnect by
   themselves and no acknowledged saga is lost.
4. `-r` drops and recreates the tables.
5. Values DTM's MySQL columns cannot hold (too long, NUL, a branch body over BLOB's 65,535 bytes) get a 400 naming
   the field, and the server keeps serving.

Expected behaviour: dtm-spec §2, §4, §9, §11.2. When a test fails, the captured stdout of its teardown holds the tail
of every server's log and of MariaDB's log.
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
from conftest import DtmServer, Response, _server_binary
from test_postgres_store import SETTLE_SECONDS, branch_rows, call_summary, parse_time, saga_body, submit

SHANGHAI = timezone(timedelta(hours=8))
# The coordinators of test 1 run in this zone, as the DTM that wrote the rows did (gorm's DSN: loc=Local).
TZ_ENV = {"TZ": "Asia/Shanghai"}


def new_gid(tag):
    return "my-%s-%s" % (tag, uuid.uuid4().hex[:16])


def q(s):
    """An SQL string literal (MySQL: quotes doubled, backslashes escaped)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"


def local8(dt):
    """A time as DTM writes it with TZ=Asia/Shanghai: a `datetime` of whole seconds in local time, no zone."""
    return q(dt.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"))


@pytest.fixture(scope="module")
def binary():
    b = _server_binary()
    if not (b.is_file() and os.access(b, os.X_OK)):
        pytest.fail("dtm-server binary not found or not executable at %s; build it or set DTM_SERVER_BIN" % b, pytrace=False)
    return b


@pytest.fixture(scope="module")
def mysql():
    """A private MariaDB server for this module (independent of DTM_TEST_STORE)."""
    m = mysql_harness.MySQLServer().start()
    try:
        yield m
    finally:
        m.destroy()


@pytest.fixture
def servers(binary, tmp_path, mysql):
    """Starts swift-dtm servers: servers(database, on=<server>, reset=False, env={...}) -> a started DtmServer."""
    started = []
    backends = []
    lock = threading.Lock()

    def start(database, on=None, reset=False, env=None):
        on = on or mysql
        with lock:
            if on not in backends:
                backends.append(on)
            workdir = tmp_path / ("dtm-%d" % len(started))
            workdir.mkdir()
            started.append(None)
        program = binary
        if reset:
            program = workdir / "dtm-server-r.sh"
            program.write_text('#!/bin/sh\nexec "%s" -r "$@"\n' % binary)
            program.chmod(0o755)
        extra = on.server_env(database)
        extra.update(env or {})
        server = DtmServer(program, workdir, extra_env=extra)
        with lock:
            started[started.index(None)] = server
        server.start()
        return server

    try:
        yield start
    finally:
        for i, s in enumerate(x for x in started if x is not None):
            print("===== dtm-server #%d (%s) =====\n%s" % (i, s.base_url, s.log_tail(12000)))
            s.stop()
        for b in backends:
            print("===== mariadb (port %d) =====\n%s" % (b.port, b.log_tail()))


def rows(m, sql, database):
    out = m.sql(sql, database).strip()
    return [line.split("\t") for line in out.splitlines()] if out else []


# ----------------------------------------------------------------------------------------------------------------
# 1. A database DTM created
# ----------------------------------------------------------------------------------------------------------------


def dtm_ddl(db):
    """DTM's sqls/dtmsvr.storage.mysql.sql, for database `db` (the `drop table` lines left out: the database is new)."""
    return """
CREATE DATABASE IF NOT EXISTS {db} /*!40100 DEFAULT CHARACTER SET utf8mb4 */;
CREATE TABLE if not EXISTS {db}.trans_global (
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
CREATE TABLE IF NOT EXISTS {db}.trans_branch_op (
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
CREATE TABLE IF NOT EXISTS {db}.kv (
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
""".format(db=db)


def dtm_rows(db, gid, trans_type, status, options, custom_data, created, next_cron, branches):
    """The INSERTs DTM makes for a transaction and its branch rows [(branch_id, op, url, payload)], in order."""
    t = local8(created)
    sql = [
        "INSERT INTO {db}.trans_global (gid, trans_type, status, query_prepared, protocol, create_time, update_time, "
        "options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason) VALUES "
        "({gid}, {type}, {status}, '', 'http', {t}, {t}, {opts}, {custom}, 10, {nct}, '', '', '', '');".format(
            db=db, gid=q(gid), type=q(trans_type), status=q(status), t=t, opts=q(options), custom=q(custom_data), nct=local8(next_cron)
        )
    ]
    for bid, op, url, payload in branches:
        sql.append(
            "INSERT INTO {db}.trans_branch_op (gid, url, bin_data, branch_id, op, status, create_time, update_time) "
            "VALUES ({gid}, {url}, X'{hex}', '{bid}', '{op}', 'prepared', {t}, {t});".format(
                db=db, gid=q(gid), url=q(url), hex=payload.encode().hex(), bid=bid, op=op, t=t
            )
        )
    return "\n".join(sql)


def dtm_saga_rows(db, busi, gid, prefix, payloads, created, next_cron):
    branches = []
    for i, payload in enumerate(payloads):
        for op, name in (("compensate", "Compensate"), ("action", "Action")):
            branches.append(("%02d" % (i + 1), op, busi.url("%s%s%d" % (prefix, name, i + 1)), payload))
    return dtm_rows(db, gid, "saga", "submitted", '{"timeout_to_fail":60,"concurrent":false}', '{"concurrent":false}', created, next_cron, branches)


def test_database_created_by_dtm_is_read_and_driven_to_the_end(mysql, servers, busi):
    db = mysql_harness.new_database()
    mysql.sql(dtm_ddl(db))
    now = datetime.now(timezone.utc)
    created = (now - timedelta(seconds=5)).replace(microsecond=0)
    next_cron = now - timedelta(seconds=30)
    ok, bad = new_gid("dtm-ok"), new_gid("dtm-fail")
    ok_payloads = ['{"amount":30,"step":1}', '{"amount":30,"step":2}']
    bad_payloads = ['{"amount":40,"step":1}', '{"amount":40,"step":2}']
    busi.on("M1Action2", Response(409, {"dtm_result": "FAILURE"}), gid=bad)
    # A TCC prepared a minute ago whose client went away: past DTM's TimeoutToFail (35 s), so it is aborted. Had the
    # local times been read in another zone, it would be hours old or in the future, and the sagas too.
    tcc_gid = new_gid("dtm-tcc")
    tcc_created = (now - timedelta(seconds=60)).replace(microsecond=0)
    tcc_branches = [(bid, op, busi.url("M1%s%s" % (op.capitalize(), bid)), '{"tcc":"%s"}' % bid) for bid in ("01", "02") for op in ("cancel", "confirm")]
    topic_value = json.dumps([{"url": busi.url("TopicSubscriber"), "remark": ""}], separators=(",", ":"))
    mysql.sql(
        dtm_saga_rows(db, busi, ok, "M1", ok_payloads, created, next_cron)
        + "\n"
        + dtm_saga_rows(db, busi, bad, "M1", bad_payloads, created, next_cron)
        + "\n"
        + dtm_rows(db, tcc_gid, "tcc", "prepared", '{"concurrent":false}', "", tcc_created, next_cron, tcc_branches)
        + "\nINSERT INTO {db}.kv (cat, k, v, version, create_time, update_time) VALUES ('topics', 'topic1', {v}, 1, {t}, {t});".format(
            db=db, v=q(topic_value), t=local8(created)
        )
    )
    global_ids = dict(rows(mysql, "SELECT gid, id FROM trans_global", db))
    branch_ids_before = rows(mysql, "SELECT id, gid, branch_id, op FROM trans_branch_op ORDER BY id", db)

    server = servers(db, env=TZ_ENV)

    final_ok = server.wait_for_status(ok, "succeed", timeout=20)
    final_bad = server.wait_for_status(bad, "failed", timeout=20)
    final_tcc = server.wait_for_status(tcc_gid, "failed", timeout=20)
    time.sleep(SETTLE_SECONDS)
    for gid, answer, payloads, statuses in (
        (ok, final_ok, ok_payloads, ["prepared", "succeed", "prepared", "succeed"]),
        (bad, final_bad, bad_payloads, ["succeed", "succeed", "succeed", "failed"]),
    ):
        t = answer["transaction"]
        assert t["gid"] == gid and t["trans_type"] == "saga" and t["id"] == int(global_ids[gid]), t
        assert parse_time(t["create_time"]) == created, (t["create_time"], created.isoformat())
        assert branch_rows(answer) == [("01", "compensate", statuses[0]), ("01", "action", statuses[1]), ("02", "compensate", statuses[2]), ("02", "action", statuses[3])], answer
        for b, i in zip(answer["branches"], (0, 0, 1, 1)):
            assert base64.b64decode(b["bin_data"]).decode() == payloads[i], b
    t = final_tcc["transaction"]
    assert parse_time(t["create_time"]) == tcc_created, (t["create_time"], tcc_created.isoformat())
    assert "timeout" in t.get("rollback_reason", "").lower(), t
    assert call_summary(busi.calls(tcc_gid)) == [("M1Cancel02", "02", "cancel"), ("M1Cancel01", "01", "cancel")], busi.calls(tcc_gid)
    assert call_summary(busi.calls(ok)) == [("M1Action1", "01", "action"), ("M1Action2", "02", "action")], busi.calls(ok)
    assert call_summary(busi.calls(bad)) == [
        ("M1Action1", "01", "action"), ("M1Action2", "02", "action"), ("M1Compensate2", "02", "compensate"), ("M1Compensate1", "01", "compensate"),
    ], busi.calls(bad)
    r = requests.get(server.api + "/queryKV", params={"cat": "topics", "key": "topic1"}, timeout=5)
    assert r.status_code == 200 and r.json()["kv"][0]["v"] == topic_value, (r.status_code, r.text)
    # The rows were updated in place, and times written back are local times as DTM writes them.
    assert rows(mysql, "SELECT id, gid, branch_id, op FROM trans_branch_op ORDER BY id", db) == branch_ids_before
    finish = rows(mysql, "SELECT finish_time FROM trans_global WHERE gid = %s" % q(ok), db)[0][0]
    finished_at = datetime.strptime(finish, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
    assert abs((finished_at - datetime.now(timezone.utc)).total_seconds()) < 60, finish
    assert int(rows(mysql, "SELECT version FROM swift_dtm_schema", db)[0][0]) > 0
    assert server.is_running()


# ----------------------------------------------------------------------------------------------------------------
# 2. Two coordinators on one database
# ----------------------------------------------------------------------------------------------------------------


def test_two_coordinators_on_one_database(mysql, servers, busi):
    db = mysql_harness.new_database()
    started, errors = [None, None], []

    def start(i):
        try:
            started[i] = servers(db)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and all(started), errors
    a, b = started
    payloads = ['{"amount":1}', '{"amount":2}']
    sagas = []
    for i, wait in enumerate((True, True, False, False, True, False)):
        src, other = (a, b) if i % 2 == 0 else (b, a)
        gid = new_gid("two-%d" % i)
        r = submit(src, saga_body(busi, gid, "M2", payloads, wait_result=wait))
        assert r.status_code == 200, (r.status_code, r.text)
        if wait:
            assert other.query(gid)["transaction"]["status"] == "succeed", gid
        sagas.append(gid)
    ongoing_gid = new_gid("two-ongoing")
    busi.on("M2Action1", Response(425, {"dtm_result": "ONGOING"}), Response(200, {"dtm_result": "SUCCESS"}), gid=ongoing_gid)
    r = submit(a, saga_body(busi, ongoing_gid, "M2", payloads, retry_interval=1))
    assert r.status_code == 200, (r.status_code, r.text)
    sagas.append(ongoing_gid)
    for gid in sagas:
        b.wait_for_status(gid, "succeed", timeout=20)
    time.sleep(SETTLE_SECONDS)
    for gid in sagas:
        assert a.query(gid) == b.query(gid), gid
        expected = [("M2Action1", "01", "action"), ("M2Action2", "02", "action")]
        if gid == ongoing_gid:
            expected.insert(0, ("M2Action1", "01", "action"))
        assert call_summary(busi.calls(gid)) == expected, busi.calls(gid)
    assert rows(mysql, "SELECT owner <> '' FROM trans_global WHERE gid = %s" % q(ongoing_gid), db) == [["1"]], "not finished by a cron claim"
    assert rows(mysql, "SELECT count(*) FROM swift_dtm_schema", db) == [["1"]]


# ----------------------------------------------------------------------------------------------------------------
# 3. MariaDB restarted under load
# ----------------------------------------------------------------------------------------------------------------


def test_mysql_restart_under_load(servers, busi):
    own = mysql_harness.MySQLServer().start()
    try:
        _restart_under_load(own, servers, busi)
    finally:
        own.destroy()


def _restart_under_load(own, servers, busi):
    db = mysql_harness.new_database()
    coordinators = [servers(db, on=own), servers(db, on=own)]
    payloads = ['{"amount":7}', '{"amount":8}']
    records = []  # (start, end, coordinator, gid, status or None, text)
    stop = threading.Event()
    tag = uuid.uuid4().hex[:8]
    busi.on("M3Action2", Response(200, {"dtm_result": "SUCCESS"}, 0.3))  # some rounds are in flight at the stop

    def client(ix):
        n = 0
        while not stop.is_set():
            n += 1
            gid = "my-restart-%s-%d-%d" % (tag, ix, n)
            t0 = time.monotonic()
            try:
                r = submit(coordinators[ix], saga_body(busi, gid, "M3", payloads, wait_result=n % 2 == 0, retry_interval=1))
                records.append((t0, time.monotonic(), ix, gid, r.status_code, r.text[:300]))
            except requests.RequestException as e:
                records.append((t0, time.monotonic(), ix, gid, None, repr(e)))
            time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(2.0)
        t_stop_begin = time.monotonic()
        own.stop("fast")
        t_stopped = time.monotonic()
        time.sleep(3.0)
        t_start_begin = time.monotonic()
        own.start()
        t_started = time.monotonic()
        first_ok = None
        while time.monotonic() < t_started + 10.0 and first_ok is None:
            first_ok = next((r for r in list(records) if r[0] >= t_started and r[4] == 200), None)
            time.sleep(0.1)
        time.sleep(6.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    assert not any(t.is_alive() for t in threads), "a client thread is stuck"

    def show(rs):
        return "\n".join("%+.2fs %.2fs c%d %s -> %s %s" % (r[0] - t_stop_begin, r[1] - r[0], r[2], r[3], r[4], r[5][:160]) for r in rs)

    failures = []
    if any(r[4] is None for r in records):
        failures.append("submits without an HTTP answer:\n" + show([r for r in records if r[4] is None]))
    before = [r for r in records if r[1] < t_stop_begin]
    if not before or any(r[4] != 200 for r in before):
        failures.append("submits before the stop that were not acknowledged:\n" + show([r for r in before if r[4] != 200]))
    during = [r for r in records if r[0] >= t_stopped and r[1] <= t_start_begin]
    if not during:
        failures.append("no submit was made while MariaDB was down")
    bad_during = [r for r in during if r[4] is None or r[4] < 500 or r[1] - r[0] > 5.0]
    if bad_during:
        failures.append("submits while MariaDB was down that did not get a 5xx within 5 s:\n" + show(bad_during))
    if first_ok is None:
        failures.append("no submit succeeded within 10 s after MariaDB was started again")
    else:
        late = [r for r in records if r[0] >= first_ok[1] + 5.0 and r[4] != 200]
        if late:
            failures.append("submits failing more than 5 s after the first success:\n" + show(late))
    print("submits: %d before, %d while down, %d in all" % (len(before), len(during), len(records)))
    acknowledged = {r[3] for r in records if r[4] == 200}
    deadline = time.monotonic() + 45
    while True:
        stored = dict(rows(own, "SELECT gid, status FROM trans_global", db))
        lost = sorted(acknowledged - set(stored))
        unfinished = sorted(g for g, st in stored.items() if st != "succeed")
        if (not unfinished and not lost) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if lost:
        failures.append("acknowledged but not stored: %s" % lost)
    if unfinished:
        failures.append("not succeed 45 s after the restart: %s" % unfinished)
    if not all(c.is_running() for c in coordinators):
        failures.append("a coordinator exited")
    assert not failures, "\n\n".join(failures)
    for gid in acknowledged:
        steps = [c.query.get("branch_id") for c in busi.calls(gid)]
        assert {c.op for c in busi.calls(gid)} == {"action"} and steps == sorted(steps) and set(steps) == {"01", "02"}, busi.calls(gid)


# ----------------------------------------------------------------------------------------------------------------
# 4. -r
# ----------------------------------------------------------------------------------------------------------------


def test_reset_flag_drops_the_data(mysql, servers, busi):
    db = mysql_harness.new_database()
    first = servers(db)
    old = new_gid("reset-old")
    r = submit(first, saga_body(busi, old, "M4", ['{"a":1}'], wait_result=True))
    assert r.status_code == 200, (r.status_code, r.text)
    first.stop()
    second = servers(db, reset=True)
    assert second.query(old) == {"transaction": None, "branches": []}
    counts = rows(mysql, "SELECT (SELECT count(*) FROM trans_global), (SELECT count(*) FROM trans_branch_op), (SELECT count(*) FROM kv)", db)
    assert counts == [["0", "0", "0"]], counts
    new = new_gid("reset-new")
    r = submit(second, saga_body(busi, new, "M4", ['{"a":2}'], wait_result=True))
    assert r.status_code == 200, (r.status_code, r.text)
    assert second.query(new)["transaction"]["status"] == "succeed"


# ----------------------------------------------------------------------------------------------------------------
# 5. Hostile input
# ----------------------------------------------------------------------------------------------------------------


def test_values_the_columns_cannot_hold_are_refused_clearly(mysql, servers, busi):
    server = servers(mysql_harness.new_database())
    cases = [
        ("gid of 129 characters", dict(json=saga_body(busi, "g" * 129, "M5", ['{"a":1}'])), ("gid", "128")),
        (
            "branch url of 1100+ characters",
            dict(json={"gid": new_gid("long-url"), "trans_type": "saga", "steps": [{"action": busi.url("M5Action") + "?p=" + "x" * 1100, "compensate": busi.url("M5C")}], "payloads": ['{"a":1}']}),
            ("url", "1024"),
        ),
        ("custom_data of 1100+ characters", dict(json=saga_body(busi, new_gid("long-custom"), "M5", ['{"a":1}'], custom_data=json.dumps({"p": "y" * 1100}))), ("custom_data", "1024")),
        ("payload over BLOB's 65535 bytes", dict(json=saga_body(busi, new_gid("big"), "M5", [json.dumps({"p": "z" * 70000})])), ("bin_data", "65535")),
    ]
    nul_msg = {"gid": new_gid("nul"), "trans_type": "msg", "steps": [{"action": busi.url("M5Action")}], "payloads": ['{"a":1}']}
    nul_msg["query_prepared"] = busi.url("M5Query") + "\u0000"
    cases = [("/submit",) + c for c in cases] + [("/prepare", "query_prepared with NUL", dict(json=nul_msg), ("query_prepared", "nul"))]
    problems = []
    for path, name, kwargs, words in cases:
        r = requests.post(server.api + path, timeout=10, **kwargs)
        print("%s: HTTP %d %s" % (name, r.status_code, r.text[:200]))
        if r.status_code != 400 or not all(w.lower() in r.text.lower() for w in words):
            problems.append("%s: HTTP %d %s (wanted 400 naming %s)" % (name, r.status_code, r.text[:300], words))
    # 1,017 characters of which 1,010 take four bytes fit: widths count characters, and utf8mb4 holds them.
    wide = new_gid("wide")
    custom = json.dumps({"x": "😀" * 1010}, ensure_ascii=False)
    r = submit(server, saga_body(busi, wide, "M5", ['{"a":1}'], wait_result=True, custom_data=custom))
    if r.status_code != 200:
        problems.append("custom_data of 1010 emoji: HTTP %d %s" % (r.status_code, r.text[:300]))
    elif "😀" * 1010 not in server.query(wide)["transaction"].get("custom_data", ""):
        problems.append("custom_data of 1010 emoji did not round-trip: %s" % server.query(wide)["transaction"].get("custom_data", "")[:100])
    assert server.is_running()
    ok = new_gid("after")
    r = submit(server, saga_body(busi, ok, "M5", ['{"a":1}'], wait_result=True))
    assert r.status_code == 200, (r.status_code, r.text)
    assert not problems, "\n".join(problems)
