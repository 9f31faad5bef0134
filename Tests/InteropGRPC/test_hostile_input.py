"""Hostile input against the real server (issue 13): numbers that overflowed the time arithmetic, stored
transactions no version of the API should have accepted, allow-list bypasses, redirects, and transactions that
tried to keep the cron loop's slots for good. After each, the server is still up and ordinary sagas still finish.
"""

import json
import sqlite3
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import http_interop

MAX_SECONDS = 3153600000  # Limits.maxOptionSeconds: 100 years
INT64_MAX = 9223372036854775807
INT64_MIN = -9223372036854775808


def _gid(tag):
    return "%s-%s" % (tag, uuid.uuid4().hex[:10])


def _server(tmp_path_factory, name, env=None):
    return http_interop.DtmServer(http_interop._server_binary(), tmp_path_factory.mktemp(name), extra_env=env or {})


def _saga(busi, gid, actions, **options):
    body = {
        "gid": gid,
        "trans_type": "saga",
        "steps": [{"action": busi.url(a), "compensate": busi.url(a + "Revert")} for a in actions],
        "payloads": ["{}" for _ in actions],
    }
    body.update(options)
    return body


def _assert_up(server):
    assert server.is_running(), server.log_tail()
    assert requests.get(server.base_url + "/api/ping", timeout=5).status_code == 200


@pytest.fixture(scope="module")
def busi():
    srv = http_interop.BranchServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = _server(tmp_path_factory, "hostile-dtm")
    s.start()
    try:
        yield s
    finally:
        s.stop()


# --------------------------------------------------------------------------------------------------------------
# Numbers that trapped the process
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, params, problem",
    [
        ("resetCronTime", {"timeout": "10000000000000"}, "timeout"),
        ("resetCronTime", {"timeout": "-10000000000000"}, "timeout"),
        ("resetCronTime", {"timeout": "99999999999999999999999"}, "timeout"),
        ("all", {"createTimeStart": "10000000000000000"}, "createTimeStart"),
        ("all", {"createTimeEnd": "-1"}, "createTimeEnd"),
        ("all", {"position": "-5"}, "position"),
        ("all", {"limit": "0"}, "limit"),
        ("all", {"limit": "abc"}, "limit"),
        ("scanKV", {"cat": "topics", "limit": "-1"}, "limit"),
    ],
)
def test_huge_and_negative_query_numbers_are_refused_by_name(server, path, params, problem):
    r = requests.get(server.api + "/" + path, params=params, timeout=5)
    assert r.status_code == 400, r.text
    assert problem in r.text
    _assert_up(server)


def test_limits_above_the_page_size_are_clamped_as_dtm_answers_them(server):
    for limit in ("100000", "99999999999999999999999"):
        r = requests.get(server.api + "/all", params={"limit": limit}, timeout=5)
        assert r.status_code == 200, r.text
        assert len(r.json()["transactions"]) <= 10000
        r = requests.get(server.api + "/resetCronTime", params={"limit": limit}, timeout=5)
        assert r.status_code == 200, r.text
    _assert_up(server)


@pytest.mark.parametrize(
    "custom_data, problem",
    [
        ({"delay": 10000000000000}, "custom_data delay"),
        ({"delay": -1}, "custom_data delay"),
        ({"delay": 1e30}, "custom_data"),
        ({"delay": "soon"}, "custom_data"),
    ],
)
def test_msg_delay_is_validated_at_submit_and_nothing_is_stored(server, busi, custom_data, problem):
    gid = _gid("delay")
    body = {
        "gid": gid, "trans_type": "msg", "steps": [{"action": busi.url("TransIn")}], "payloads": ["{}"],
        "custom_data": json.dumps(custom_data),
    }
    r = requests.post(server.api + "/submit", json=body, timeout=5)
    assert r.status_code == 400, r.text
    assert problem in r.text
    assert server.query(gid)["transaction"] is None
    _assert_up(server)


@pytest.mark.parametrize("option", ["timeout_to_fail", "retry_interval", "request_timeout", "retry_limit"])
def test_negative_and_oversized_options_are_refused(server, busi, option):
    for value in (-1, MAX_SECONDS + 1) if option != "retry_limit" else (-1, 101, INT64_MAX):
        gid = _gid("opt")
        r = requests.post(server.api + "/submit", json=_saga(busi, gid, ["TransIn"], **{option: value}), timeout=5)
        assert r.status_code == 400, r.text
        assert option in r.text
        assert server.query(gid)["transaction"] is None


# --------------------------------------------------------------------------------------------------------------
# Poison transactions: stored with every extreme value, then claimed by the cron loop after a restart
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    http_interop.pg_harness.store_under_test() != "sqlite",
    reason="writes raw rows into the SQLite file; the PostgreSQL and MySQL stores' unreadable rows are tested in "
    "Tests/StoreTests",
)
def test_poison_transactions_never_stop_the_coordinator(tmp_path_factory, busi):
    busi.on("Broken", http_interop.Response(500, {"error": "broken"}))
    server = _server(tmp_path_factory, "poison-dtm")
    server.start()
    try:
        extreme = dict(timeout_to_fail=MAX_SECONDS, retry_interval=MAX_SECONDS, request_timeout=MAX_SECONDS)
        gids = {}
        # Everything the API accepts at its limits.
        gids["saga"] = _gid("x-saga")
        # The template of the raw rows below: it stays `submitted`, backing off, as its branch keeps failing.
        body = _saga(busi, gids["saga"], ["Broken"], branch_headers={"X-Long": "v" * 4000}, **extreme)
        assert requests.post(server.api + "/submit", json=body, timeout=10).status_code == 200
        gids["retries"] = _gid("x-retries")
        body = _saga(busi, gids["retries"], ["Broken"], retry_limit=100, **extreme)
        assert requests.post(server.api + "/submit", json=body, timeout=10).status_code == 200
        gids["msg"] = _gid("x-msg")
        body = {
            "gid": gids["msg"], "trans_type": "msg", "steps": [{"action": busi.url("TransIn")}], "payloads": ["{}"],
            "custom_data": json.dumps({"delay": MAX_SECONDS}), **extreme,
        }
        assert requests.post(server.api + "/submit", json=body, timeout=10).status_code == 200
        gids["prepared-msg"] = _gid("x-pmsg")
        body = {
            "gid": gids["prepared-msg"], "trans_type": "msg", "steps": [{"action": busi.url("TransIn")}],
            "payloads": ["{}"], "query_prepared": busi.url("Broken"), **extreme,
        }
        assert requests.post(server.api + "/prepare", json=body, timeout=10).status_code == 200
        gids["tcc"] = _gid("x-tcc")
        assert requests.post(server.api + "/prepare", json={"gid": gids["tcc"], "trans_type": "tcc", **extreme}, timeout=10).status_code == 200
        # Rows as an older version or another program could have stored them: values the API refuses today.
        raw = {name: _gid("raw-" + name) for name in ("delay", "interval", "created", "options", "orders", "type", "branch", "retries")}
        server.stop()
        db = sqlite3.connect(str(server.store_file))
        template = db.execute("SELECT * FROM trans_global WHERE gid = ?", (gids["saga"],)).fetchone()
        columns = [d[0] for d in db.execute("SELECT * FROM trans_global LIMIT 0").description]

        def insert(gid, **changes):
            row = dict(zip(columns, template))
            row.pop("id")
            row.update(gid=gid, **changes)
            db.execute(
                "INSERT INTO trans_global (%s) VALUES (%s)" % (", ".join(row), ", ".join("?" for _ in row)), list(row.values())
            )
            for b in db.execute("SELECT gid, url, bin_data, branch_id, op, status, create_time, update_time FROM trans_branch_op WHERE gid = ?", (gids["saga"],)).fetchall():
                db.execute(
                    "INSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, create_time, update_time) VALUES (?,?,?,?,?,?,?,?)",
                    (gid,) + tuple(b[1:]),
                )

        insert(raw["delay"], trans_type="msg", custom_data=json.dumps({"delay": 10000000000000}))
        insert(raw["interval"], next_cron_interval=INT64_MAX)
        insert(raw["created"], create_time=INT64_MIN, options=json.dumps({"timeout_to_fail": 1}))
        insert(raw["options"], options='{"timeout_to_fail": 1e300, "retry_interval": -5', next_cron_interval=-7)
        insert(raw["orders"], custom_data=json.dumps({"orders": {"9": [0]}, "concurrent": True}))
        insert(raw["retries"], options=json.dumps({"retry_limit": INT64_MAX, "retry_count": INT64_MAX}))
        insert(raw["type"], trans_type="bogus")
        insert(raw["branch"])
        db.execute("UPDATE trans_branch_op SET status = 'weird' WHERE gid = ?", (raw["branch"],))
        db.execute("UPDATE trans_global SET next_cron_time = 0 WHERE status IN ('prepared', 'submitted', 'aborting')")
        db.commit()
        db.close()

        server.start()
        # Every due row is claimed and moved on (processed, backed off or set aside), the server staying up.
        deadline = time.monotonic() + 20
        now_us = int(time.time() * 1e6)
        pending = set(gids.values()) | set(raw.values())
        while pending and time.monotonic() < deadline:
            _assert_up(server)
            ro = sqlite3.connect("file:%s?mode=ro" % server.store_file, uri=True)
            for gid in list(pending):
                row = ro.execute("SELECT status, next_cron_time FROM trans_global WHERE gid = ?", (gid,)).fetchone()
                if row[0] in ("succeed", "failed") or (row[1] or 0) > now_us:
                    pending.discard(gid)
            ro.close()
            time.sleep(0.3)
        assert not pending, "not claimed within 20 s: %s\n%s" % (sorted(pending), server.log_tail())
        log = server.stderr_path.read_text(errors="replace")
        assert raw["type"] in log and "cannot be processed" in log
        assert raw["branch"] in log and "backing off" in log
        # Listings go on too: the unreadable row is left out of the page, not the page refused.
        listed = requests.get(server.api + "/all", params={"limit": 100}, timeout=5)
        assert listed.status_code == 200, listed.text
        listed_gids = {t["gid"] for t in listed.json()["transactions"]}
        assert raw["type"] not in listed_gids and gids["saga"] in listed_gids and raw["interval"] in listed_gids

        # Ordinary sagas still finish: one at once, one through the cron loop after a failed first call.
        ok = _gid("after-ok")
        r = requests.post(server.api + "/submit", json=_saga(busi, ok, ["TransOut", "TransIn"], wait_result=True), timeout=10)
        assert r.status_code == 200, r.text
        busi.on("Flaky", http_interop.Response(500, {"error": "once"}), http_interop.SUCCESS)
        flaky = _gid("after-flaky")
        assert requests.post(server.api + "/submit", json=_saga(busi, flaky, ["Flaky"], retry_interval=1), timeout=10).status_code == 200
        server.wait_for_status(flaky, "succeed", timeout=20)
        time.sleep(2)  # a few more cron passes over the poisoned rows
        _assert_up(server)
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------------------
# The branch-host allow-list: what is checked is what is dialled
# --------------------------------------------------------------------------------------------------------------


class _Redirector:
    """Answers every request with a 302 to `location`, and records the paths it was asked for."""

    def __init__(self, location):
        owner = self
        self.paths = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.paths.append(self.path)
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_allow_list_bypasses_are_refused_and_redirects_not_followed(tmp_path_factory, busi):
    redirector = _Redirector("http://localhost:%d/api/busi/TransIn" % busi.port)
    allow = "127.0.0.1:%d, 127.0.0.1:%d" % (busi.port, redirector.port)
    server = _server(tmp_path_factory, "allow-dtm", {"BRANCH_HOST_ALLOW_LIST": allow})
    server.start()
    try:
        allowed = "127.0.0.1:%d" % busi.port
        for action in (
            "evil.example:50051/p.S/M://%s" % allowed,  # a second '://' later in a gRPC target
            "http://%s@localhost:%d/api/busi/TransIn" % (allowed, busi.port),  # user info
            "http://localhost:%d/api/busi/TransIn" % busi.port,  # another name for the same machine
            "http://127.0.0.1:%d/api/busi/TransIn" % (busi.port + 1 if busi.port < 65535 else busi.port - 1),  # other port
            "http://127.0.0.1%%3a%d/api/busi/TransIn" % busi.port,  # an escaped colon
        ):
            gid = _gid("bypass")
            body = {"gid": gid, "trans_type": "saga", "steps": [{"action": action, "compensate": ""}], "payloads": ["{}"]}
            r = requests.post(server.api + "/submit", json=body, timeout=5)
            assert r.status_code == 400, (action, r.text)
            assert "BranchHostAllowList" in r.text
            assert server.query(gid)["transaction"] is None
        gid = _gid("qp")
        body = {"gid": gid, "trans_type": "msg", "steps": [{"action": busi.url("TransIn")}], "payloads": ["{}"],
                "query_prepared": "evil.example:1/p.S/M://" + allowed}
        assert requests.post(server.api + "/prepare", json=body, timeout=5).status_code == 400
        r = requests.get(server.api + "/subscribe", params={"topic": "t", "url": "http://%s@evil.example/" % allowed, "remark": ""}, timeout=5)
        assert r.status_code == 400, r.text

        # An allowed host that redirects elsewhere: the redirect is not followed, the branch call is an error.
        # (The fragment keeps the URL off the lean client, on the AsyncHTTPClient path that follows redirects.)
        before = len(busi.calls())
        gid = _gid("redirect")
        body = {"gid": gid, "trans_type": "saga", "payloads": ["{}"],
                "steps": [{"action": "http://127.0.0.1:%d/api/busi/Hop#f" % redirector.port, "compensate": ""}]}
        assert requests.post(server.api + "/submit", json=body, timeout=5).status_code == 200
        deadline = time.monotonic() + 5
        while not redirector.paths and time.monotonic() < deadline:
            time.sleep(0.05)
        assert redirector.paths, "the allowed host was never called"
        time.sleep(1)
        assert len(busi.calls()) == before, "the redirect was followed: %s" % busi.calls()[before:]
        assert server.query(gid)["transaction"]["status"] == "submitted"
        _assert_up(server)
    finally:
        server.stop()
        redirector.stop()


def test_a_list_changed_by_a_restart_applies_to_stored_transactions(tmp_path_factory, busi):
    busi.on("Later", http_interop.Response(500, {"error": "not yet"}))
    server = _server(tmp_path_factory, "relist-dtm")
    server.start()
    try:
        gid = _gid("relist")
        body = _saga(busi, gid, ["Later"], retry_interval=1)
        assert requests.post(server.api + "/submit", json=body, timeout=5).status_code == 200
        busi.wait_for_calls(gid, 1)
        server.stop()
        server.extra_env["BRANCH_HOST_ALLOW_LIST"] = "other.example"
        busi.on("Later", http_interop.SUCCESS)
        calls = len(busi.calls(gid))
        server.start()
        requests.post(server.api + "/resetNextCronTime", json={"gid": gid}, timeout=5)
        time.sleep(3)
        assert len(busi.calls(gid)) == calls, "a host no longer allowed was called"
        assert server.query(gid)["transaction"]["status"] == "submitted"
        assert "not in BranchHostAllowList" in server.stderr_path.read_text(errors="replace")
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------------------
# The cron loop cannot be starved
# --------------------------------------------------------------------------------------------------------------


def test_check_backs_that_never_answer_cannot_hold_the_cron_loop(tmp_path_factory, busi):
    """16 prepared msgs whose query_prepared never answers, asking for a 100-year request timeout, then an
    ordinary saga that needs the cron loop: MaxRequestTimeout cuts the check-backs, the saga recovers."""
    busi.on("Hang", http_interop.Response(200, {"dtm_result": "SUCCESS"}, 120))
    busi.on("FlakyStarve", http_interop.Response(500, {"error": "once"}), http_interop.SUCCESS)
    server = _server(tmp_path_factory, "starve-dtm", {"MAX_REQUEST_TIMEOUT": "2", "REQUEST_TIMEOUT": "2"})
    server.start()
    try:
        for i in range(16):
            body = {"gid": _gid("hang%d" % i), "trans_type": "msg", "steps": [{"action": busi.url("TransIn")}],
                    "payloads": ["{}"], "query_prepared": busi.url("Hang"), "timeout_to_fail": 1,
                    "request_timeout": MAX_SECONDS}
            assert requests.post(server.api + "/prepare", json=body, timeout=5).status_code == 200
        time.sleep(3)  # the cron loop has claimed the msgs and called their check-backs
        gid = _gid("starved")
        body = _saga(busi, gid, ["FlakyStarve"], retry_interval=1)
        assert requests.post(server.api + "/submit", json=body, timeout=5).status_code == 200
        server.wait_for_status(gid, "succeed", timeout=20)
        _assert_up(server)
    finally:
        server.stop()


def test_slow_rounds_are_cut_by_the_round_timeout(tmp_path_factory, busi):
    """16 prepared msgs of 30 steps, each answering success after 1.5 s: a round would hold a cron slot for 45 s.
    RoundTimeout cuts each one after 3 s and backs it off; an ordinary saga recovers meanwhile."""
    busi.on("Slow", http_interop.Response(200, {"dtm_result": "SUCCESS"}, 1.5))
    busi.on("FlakyRound", http_interop.Response(500, {"error": "once"}), http_interop.SUCCESS)
    server = _server(tmp_path_factory, "round-dtm", {"MAX_REQUEST_TIMEOUT": "2", "REQUEST_TIMEOUT": "2", "ROUND_TIMEOUT": "3"})
    server.start()
    try:
        for i in range(16):
            body = {"gid": _gid("slow%d" % i), "trans_type": "msg", "steps": [{"action": busi.url("Slow")}] * 30,
                    "payloads": ["{}"] * 30, "query_prepared": busi.url("SlowCheck"), "timeout_to_fail": 1}
            assert requests.post(server.api + "/prepare", json=body, timeout=5).status_code == 200
        time.sleep(3)
        gid = _gid("round")
        body = _saga(busi, gid, ["FlakyRound"], retry_interval=1)
        assert requests.post(server.api + "/submit", json=body, timeout=5).status_code == 200
        server.wait_for_status(gid, "succeed", timeout=15)
        assert "RoundTimeout" in server.stderr_path.read_text(errors="replace")
        _assert_up(server)
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------------------
# Bounded resources
# --------------------------------------------------------------------------------------------------------------


def _read_until_closed(sock, limit=65536, timeout=5):
    sock.settimeout(timeout)
    data = b""
    while len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _fill_until_refused(port, at_most=10):
    """Opens connections until one is refused (it receives an answer and is closed); returns the ones held and
    the refusal. Other clients (a readiness probe's kept-alive connection) may hold slots too."""
    import socket

    held = []
    for _ in range(at_most):
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(0.5)
        received = b""
        try:
            while True:  # an admitted gRPC connection gets the server's SETTINGS, but stays open
                chunk = s.recv(65536)
                if not chunk:
                    s.close()
                    return held, received
                received += chunk
        except socket.timeout:
            held.append(s)
    raise AssertionError("no connection of %d was refused" % at_most)


def test_connections_past_max_connections_are_refused_clearly(tmp_path_factory, pb):
    import grpc

    server = _server(tmp_path_factory, "maxconn-dtm", {"MAX_CONNECTIONS": "4"})
    server.start()
    try:
        for port, kind in ((server.http_port, "http"), (server.grpc_port, "grpc")):
            held, refusal = _fill_until_refused(port)
            assert 1 <= len(held) <= 4, len(held)
            if kind == "http":
                assert refusal.startswith(b"HTTP/1.1 503"), refusal
                assert b"MaxConnections" in refusal
            else:
                assert refusal[3] == 0x04 and refusal[9 + 3] == 0x07, refusal  # SETTINGS, then GOAWAY
                assert refusal[9 + 9 + 4:9 + 9 + 8] == b"\x00\x00\x00\x0b"  # ENHANCE_YOUR_CALM
                assert b"MaxConnections" in refusal
            held.pop().close()
            # A freed slot is usable again once the server has seen the close.
            deadline = time.monotonic() + 5
            while True:
                try:
                    if kind == "http":
                        ok = requests.get(server.base_url + "/api/ping", timeout=5).status_code == 200
                    else:
                        with grpc.insecure_channel(server.grpc_target) as ch:
                            ok = len(pb.DtmStub(ch).NewGid(pb.Empty(), timeout=2).Gid) > 0
                except (grpc.RpcError, requests.RequestException):
                    ok = False
                if ok:
                    break
                assert time.monotonic() < deadline, "the freed slot was not given back"
                time.sleep(0.2)
            for s in held:
                s.close()
            time.sleep(0.5)
        assert "MaxConnections reached" in server.stderr_path.read_text(errors="replace")
        _assert_up(server)
    finally:
        server.stop()


REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def test_streaming_calls_need_the_token_at_once_and_cannot_stay_silent(tmp_path_factory):
    import grpc

    server = _server(tmp_path_factory, "stream-dtm", {"AUTH_TOKEN": "s3cret", "HTTP_READ_TIMEOUT": "2"})
    server.start()
    release = threading.Event()

    def silent():
        release.wait(30)
        return
        yield  # a generator that sends nothing until released

    try:
        with grpc.insecure_channel(server.grpc_target) as ch:
            call = ch.stream_stream(REFLECTION, request_serializer=None, response_deserializer=None)
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as refused:
                list(call(silent(), timeout=10))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert time.monotonic() - started < 2, "the token was checked only once a message arrived"
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as cut:
                list(call(silent(), timeout=20, metadata=[("authorization", "Bearer s3cret")]))
            assert cut.value.code() == grpc.StatusCode.CANCELLED, cut.value
            assert time.monotonic() - started < 6
        _assert_up(server)
    finally:
        release.set()
        server.stop()


def test_admin_apis_need_the_admin_token_and_branch_header_values_are_masked(tmp_path_factory, busi):
    server = _server(tmp_path_factory, "admin-dtm", {"AUTH_TOKEN": "client", "ADMIN_TOKEN": "admin"})
    server.start()
    client = {"Authorization": "Bearer client"}
    admin = {"Authorization": "Bearer admin"}
    try:
        gid = _gid("admin")
        body = _saga(busi, gid, ["TransIn"], branch_headers={"X-Secret": "hunter2"}, wait_result=True)
        assert requests.post(server.api + "/submit", json=body, headers=client, timeout=5).status_code == 200
        assert requests.post(server.api + "/submit", json=body, timeout=5).status_code == 401
        for method, path, kwargs in [
            ("POST", "/forceStop", {"json": {"gid": gid}}),
            ("GET", "/resetCronTime", {}),
            ("POST", "/resetNextCronTime", {"json": {"gid": gid}}),
            ("DELETE", "/topic/t", {}),
            ("GET", "/subscribe", {"params": {"topic": "t", "url": busi.url("TransIn"), "remark": ""}}),
            ("GET", "/unsubscribe", {"params": {"topic": "t", "url": busi.url("TransIn")}}),
            ("GET", "/scanKV", {"params": {"cat": "topics"}}),
            ("GET", "/queryKV", {"params": {"cat": "topics"}}),
            ("GET", "/all", {}),
        ]:
            r = requests.request(method, server.api + path, headers=client, timeout=5, **kwargs)
            assert r.status_code == 401, (path, r.status_code, r.text)
        assert requests.get(server.api + "/all", headers=admin, timeout=5).status_code == 200
        # query: the client sees header names only; the admin sees the values.
        as_client = requests.get(server.api + "/query", params={"gid": gid}, headers=client, timeout=5).json()
        assert "X-Secret" in as_client["transaction"]["options"] and "hunter2" not in json.dumps(as_client)
        assert "***" in as_client["transaction"]["options"]
        as_admin = requests.get(server.api + "/query", params={"gid": gid}, headers=admin, timeout=5).json()
        assert "hunter2" in as_admin["transaction"]["options"]
        listed = requests.get(server.api + "/all", headers=admin, timeout=5).json()
        assert "hunter2" in json.dumps(listed)
        assert busi.calls(gid)[0].headers.get("x-secret") == "hunter2"
    finally:
        server.stop()


def test_metrics_labels_cannot_be_added_by_requests(server):
    for i in range(20):
        requests.get(server.base_url + "/api/dtmsvr/nonsense-%d" % i, timeout=5)
        requests.get(server.base_url + "/x%d/submit?y=%d" % (i, i), timeout=5)
    metrics = requests.get(server.base_url + "/api/metrics", timeout=5).text
    assert "nonsense" not in metrics and "x3" not in metrics
    assert 'api="other"' in metrics


def test_grpc_submissions_with_extreme_numbers_are_invalid_arguments(server, busi, pb):
    import grpc

    from conftest import dtm_stub

    with dtm_stub(server, pb) as stub:
        for options, problem in (
            ({"timeout_to_fail": -1}, "timeout_to_fail"),
            ({"retry_interval": MAX_SECONDS + 1}, "retry_interval"),
            ({"request_timeout": INT64_MIN}, "request_timeout"),
            ({"retry_limit": -5}, "retry_limit"),
        ):
            gid = _gid("grpc-opt")
            request = pb.DtmRequest(
                Gid=gid, TransType="saga", Steps=json.dumps([{"action": busi.url("TransIn"), "compensate": ""}]),
                BinPayloads=[b"{}"], TransOptions=pb.DtmTransOptions(
                    TimeoutToFail=options.get("timeout_to_fail", 0), RetryInterval=options.get("retry_interval", 0),
                    RequestTimeout=options.get("request_timeout", 0), RetryLimit=options.get("retry_limit", 0)))
            with pytest.raises(grpc.RpcError) as refused:
                stub.Submit(request, timeout=5)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert problem in refused.value.details()
            assert server.query(gid)["transaction"] is None
        gid = _gid("grpc-delay")
        request = pb.DtmRequest(
            Gid=gid, TransType="msg", Steps=json.dumps([{"action": busi.url("TransIn")}]), BinPayloads=[b"{}"],
            CustomedData=json.dumps({"delay": 10000000000000}))
        with pytest.raises(grpc.RpcError) as refused:
            stub.Submit(request, timeout=5)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _assert_up(server)
