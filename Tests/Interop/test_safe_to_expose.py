"""Safe to expose (issue 22), on the HTTP side, against the real server and real sockets.

1. Cross-site requests: a page an operator opens may send `POST /api/dtmsvr/forceStop` with `Content-Type:
   text/plain` (no CORS preflight); the browser adds `Origin` and `Sec-Fetch-Site: cross-site`. Refused with 403,
   and the transaction is untouched; the same request from curl (no browser headers) still works.
2. DNS rebinding: `Host: rebind.evil.example:PORT` reads nothing (403), on a loopback listener from anyone; names in
   `AllowedHosts` are accepted.
3. `branch_headers` that set `Host`, framing or hop-by-hop headers are refused with 400 naming the header, over
   HTTP and JSON-RPC (gRPC: Tests/InteropGRPC/test_grpc_errors.py), and nothing is stored.
4. With `AuthToken` set, a request's token is checked on its head: bodies of refused requests are dropped as they
   arrive, so 40 connections each sending 4 MiB with a wrong token leave the resident memory where it was (it
   grew by 4 MiB per connection before), and an honest client is served meanwhile.
5. API answers carry `Cache-Control: no-store`; start-up says which APIs are open.

Expected behaviour: README "Security".
"""

import json
import socket
import threading
import time
import uuid

import pytest
import requests

from conftest import DtmServer, LOOPBACK, _server_binary

TOKEN = "s3cret-token"


def new_gid(tag):
    return "py-safe-%s-%s" % (tag, uuid.uuid4().hex[:16])


@pytest.fixture
def start_server(tmp_path):
    started = []

    def start(**env):
        workdir = tmp_path / ("dtm-%d" % len(started))
        workdir.mkdir()
        server = DtmServer(_server_binary(), workdir, extra_env=env)
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for s in started:
            print("===== dtm-server %s =====\n%s" % (s.base_url, s.log_tail(8000)))
            s.stop()


def prepare_tcc(server, gid, headers=None):
    r = requests.post(server.api + "/prepare", json={"gid": gid, "trans_type": "tcc"}, headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text
    assert server.query(gid)["transaction"]["status"] == "prepared"


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


# ----------------------------------------------------------------------------------------------------------------
# 1. Cross-site requests
# ----------------------------------------------------------------------------------------------------------------


def test_cross_site_force_stop_is_refused_and_changes_nothing(dtm_server):
    gid = new_gid("xsite")
    prepare_tcc(dtm_server, gid)
    body = json.dumps({"gid": gid})
    browser_variants = [
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
        {"Origin": "http://evil.example"},  # a browser without fetch metadata
        {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"},
        {"Origin": "null"},  # sandboxed frame, file: page
        {"Origin": "http://%s:%d" % (LOOPBACK, dtm_server.grpc_port)},  # another port is another origin
    ]
    for extra in browser_variants:
        headers = {"Content-Type": "text/plain"}
        headers.update(extra)
        r = requests.post(dtm_server.api + "/forceStop", data=body, headers=headers, timeout=10)
        assert r.status_code == 403, (extra, r.status_code, r.text)
        assert "cross-" in r.json()["message"], r.text
        assert r.headers.get("Cache-Control") == "no-store"
        assert dtm_server.query(gid)["transaction"]["status"] == "prepared", extra

    # The console's own calls (same origin) and DTM's clients (no browser headers) go through.
    same_origin = {"Origin": dtm_server.base_url, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
    assert requests.get(dtm_server.api + "/query", params={"gid": gid}, headers=same_origin, timeout=10).status_code == 200
    r = requests.post(dtm_server.api + "/forceStop", data=body, headers={"Content-Type": "text/plain"}, timeout=10)
    assert r.status_code == 200 and r.json() == {"dtm_result": "SUCCESS"}, r.text
    assert dtm_server.query(gid)["transaction"]["status"] == "failed"


def test_cross_site_submit_is_refused_over_json_rpc_too(dtm_server):
    gid = new_gid("xrpc")
    body = {"jsonrpc": "2.0", "id": "x", "method": "prepare", "params": {"gid": gid, "trans_type": "tcc"}}
    r = requests.post(
        dtm_server.base_url + "/api/json-rpc", data=json.dumps(body),
        headers={"Content-Type": "text/plain", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, timeout=10,
    )
    assert r.status_code == 403, r.text
    assert dtm_server.query(gid)["transaction"] is None


# ----------------------------------------------------------------------------------------------------------------
# 2. DNS rebinding
# ----------------------------------------------------------------------------------------------------------------


def raw_get(server, path, host, extra=""):
    """A GET with a Host header of our choosing (requests would put the URL's host there)."""
    with socket.create_connection((LOOPBACK, server.http_port), timeout=10) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n" % (path, host, extra)).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode(errors="replace"), body


def test_dns_rebinding_reads_nothing(start_server):
    server = start_server(ALLOWED_HOSTS="dtm.example.com,*.svc.cluster.local")
    gid = new_gid("rebind")
    prepare_tcc(server, gid)
    rebound = "rebind.evil.example:%d" % server.http_port
    for path in ("/api/dtmsvr/all", "/api/dtmsvr/query?gid=" + gid, "/api/dtmsvr/scanKV?cat=topics"):
        for extra in ("Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: cors\r\n", ""):
            status, head, body = raw_get(server, path, rebound, extra)
            assert status == 403, (path, extra, head, body[:300])
            assert b"AllowedHosts" in body and gid.encode() not in body, body[:300]
    # IP literals, localhost and the listed names are this server's names.
    for host in ("%s:%d" % (LOOPBACK, server.http_port), "localhost:%d" % server.http_port, "DTM.example.com.", "dtm.ns.svc.cluster.local:80"):
        status, head, body = raw_get(server, "/api/dtmsvr/query?gid=" + gid, host, "Sec-Fetch-Site: same-origin\r\n")
        assert status == 200 and gid.encode() in body, (host, head)
        assert "cache-control: no-store" in head.lower(), head


def test_loopback_listener_accepts_only_loopback_names_by_default(dtm_server):
    # The test servers listen on 127.0.0.1 (LISTEN_HOST), and AllowedHosts is empty.
    status, _, body = raw_get(dtm_server, "/api/dtmsvr/all", "dtm-service:%d" % dtm_server.http_port)
    assert status == 403, body[:300]
    status, _, _ = raw_get(dtm_server, "/api/dtmsvr/all", "localhost")
    assert status == 200


# ----------------------------------------------------------------------------------------------------------------
# 3. branch_headers
# ----------------------------------------------------------------------------------------------------------------

RESERVED = ["Host", "host", "Content-Length", "Transfer-Encoding", "Connection", "TE", "Upgrade", "Keep-Alive", "Proxy-Authorization", ":authority"]


def test_branch_headers_may_not_set_host_or_hop_by_hop_headers(dtm_server, busi):
    for name in RESERVED:
        gid = new_gid("bh")
        body = {
            "gid": gid, "trans_type": "saga", "branch_headers": {name: "admin.internal"},
            "steps": [{"action": busi.url("BhAction"), "compensate": busi.url("BhCompensate")}], "payloads": ["{}"],
        }
        r = requests.post(dtm_server.api + "/submit", json=body, timeout=10)
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert "'%s'" % name in r.json()["message"], r.text
        rpc = {"jsonrpc": "2.0", "id": "1", "method": "submit", "params": body}
        r = requests.post(dtm_server.base_url + "/api/json-rpc", json=rpc, timeout=10)
        assert r.json()["error"] is not None and name in r.json()["error"]["message"], r.text
        assert dtm_server.query(gid)["transaction"] is None
    assert not [c for c in busi.calls() if c.name.startswith("Bh")]


# ----------------------------------------------------------------------------------------------------------------
# 4. Token checked on the head: no body held for a refused request
# ----------------------------------------------------------------------------------------------------------------


def test_bodies_of_refused_requests_are_not_held(start_server):
    server = start_server(AUTH_TOKEN=TOKEN, MAX_REQUEST_BODY_SIZE=str(4 * 1024 * 1024))
    pid = server.proc.pid
    size = 4 * 1024 * 1024
    chunk = b"x" * 65536
    sockets = []
    before = rss_kib(pid)
    try:
        for _ in range(40):
            s = socket.create_connection((LOOPBACK, server.http_port), timeout=30)
            s.sendall(
                ("POST /api/dtmsvr/submit HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer wrong\r\nContent-Type: application/json\r\n"
                 "Content-Length: %d\r\n\r\n" % (LOOPBACK, server.http_port, size)).encode()
            )
            sent = 0
            while sent < size - 1:
                n = min(len(chunk), size - 1 - sent)
                s.sendall(chunk[:n])
                sent += n
            sockets.append(s)
        time.sleep(0.5)
        # An honest client is served meanwhile.
        r = requests.get(server.api + "/newGid", headers={"Authorization": "Bearer " + TOKEN}, timeout=5)
        assert r.status_code == 200 and r.json()["dtm_result"] == "SUCCESS", r.text
        during = rss_kib(pid)
        grown_mib = (during - before) / 1024.0
        print("RSS before %d KiB, with 40 x 4 MiB refused bodies in flight %d KiB (+%.1f MiB)" % (before, during, grown_mib))
        assert grown_mib < 40, "resident memory grew by %.1f MiB for 40 refused 4 MiB bodies" % grown_mib
        # The last byte ends each request: it is answered 401, the connection stays usable.
        s = sockets[0]
        s.sendall(b"x")
        head = s.recv(65536)
        assert head.startswith(b"HTTP/1.1 401"), head[:200]
        assert b"cache-control: no-store" in head.lower(), head[:400]
    finally:
        for s in sockets:
            s.close()
    assert server.is_running()


# ----------------------------------------------------------------------------------------------------------------
# 5. Start-up says what is open
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, "neither AuthToken nor AdminToken is set"),
        ({"ADMIN_TOKEN": "a"}, "AuthToken is not set: the client APIs"),
        ({"AUTH_TOKEN": "c"}, "AdminToken is not set: every holder of AuthToken"),
        ({"AUTH_TOKEN": "c", "ADMIN_TOKEN": "a"}, None),
    ],
)
def test_start_up_names_the_open_apis(start_server, env, expected):
    server = start_server(**env)
    text = server.stderr_path.read_text(errors="replace")
    warnings = [line for line in text.splitlines() if "is not set" in line or "neither AuthToken" in line]
    if expected is None:
        assert warnings == [], warnings
    else:
        assert len(warnings) == 1 and expected in warnings[0], warnings


# ----------------------------------------------------------------------------------------------------------------
# DTM's default written out (issue 26): Store.Driver boltdb runs the embedded store
# ----------------------------------------------------------------------------------------------------------------


def test_boltdb_driver_runs_the_embedded_store(start_server, busi):
    server = start_server(STORE_DRIVER="boltdb")
    gid = new_gid("bolt")
    body = {
        "gid": gid, "trans_type": "saga", "wait_result": True,
        "steps": [{"action": busi.url("BoltAction"), "compensate": busi.url("BoltCompensate")}], "payloads": ["{}"],
    }
    r = requests.post(server.api + "/submit", json=body, timeout=10)
    assert r.status_code == 200, r.text
    assert server.query(gid)["transaction"]["status"] == "succeed"
    assert server.store_file.is_file()
    notices = [l for l in server.stderr_path.read_text(errors="replace").splitlines() if "Store.Driver boltdb" in l]
    assert len(notices) == 1 and "SQLite" in notices[0] and "not read" in notices[0], notices
