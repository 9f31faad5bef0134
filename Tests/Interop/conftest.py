"""Fixtures for the swift-dtm interop suite.

* ``dtm_server`` (session): the real swift-dtm binary, started in a fresh temp dir with a sqlite store on free
  loopback ports, killed at the end of the session (also when tests fail or setup breaks).
* ``branch_server`` (session) / ``busi`` (per test): a threaded stdlib HTTP server on 127.0.0.1 that plays the
  role of the business services called by DTM.  It records every call in order and answers according to rules
  set by the test (default: 200 ``{"dtm_result":"SUCCESS"}``).
* ``otlp_receiver`` (per test): an OTLP/HTTP + OTLP/gRPC trace receiver on free loopback ports (otlp_receiver.py).

When a test fails, the report gets two extra sections: the tail of the server's stderr and the branch calls
recorded during that test.
"""

import atexit
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mysql_harness  # noqa: E402  (beside this file)
import pg_harness  # noqa: E402  (beside this file)
from otlp_receiver import otlp_receiver  # noqa: E402,F401  (fixture: an OTLP trace receiver per test)

import pytest
import requests

# dtmcli calls `requests` directly (no session we could configure): make sure a proxy in the environment can
# never capture loopback traffic.
for _var in ("NO_PROXY", "no_proxy"):
    _cur = os.environ.get(_var, "")
    os.environ[_var] = ",".join(p for p in (_cur, "127.0.0.1", "localhost") if p)

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
SERVER_READY_TIMEOUT = 20.0
FINAL_STATUSES = ("succeed", "failed")

# Set while the session fixtures are alive, so the report hook can attach diagnostics.
_ACTIVE_SERVER = None
_ACTIVE_BRANCH_SERVER = None


def free_port():
    """A currently free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------------------------------------------
# DTM server process
# ----------------------------------------------------------------------------------------------------------------


class DtmServer:
    """A running swift-dtm process and helpers to talk to its HTTP API."""

    def __init__(self, binary, workdir, extra_env=None):
        self.binary = str(binary)
        self.extra_env = dict(extra_env or {})
        self.workdir = Path(workdir)
        self.http_port = free_port()
        self.grpc_port = free_port()
        while self.grpc_port == self.http_port:
            self.grpc_port = free_port()
        self.base_url = "http://%s:%d" % (LOOPBACK, self.http_port)
        self.api = self.base_url + "/api/dtmsvr"  # what dtmcli users pass as `dtm`
        self.grpc_target = "%s:%d" % (LOOPBACK, self.grpc_port)
        self.stderr_path = self.workdir / "dtm-server.stderr.log"
        self.stdout_path = self.workdir / "dtm-server.stdout.log"
        self.store_file = self.workdir / "dtm.sqlite"
        # DTM_TEST_STORE=postgres: this server stores in its own schema of a private PostgreSQL cluster; =mysql: in its
        # own database of a private MariaDB server.
        self.store_env = dict(STORE_DRIVER="sqlite", STORE_FILE=str(self.store_file))
        if pg_harness.store_under_test() == "postgres":
            self.store_env = pg_harness.shared_cluster().server_env(pg_harness.new_schema())
        elif pg_harness.store_under_test() == "mysql":
            self.store_env = mysql_harness.shared_server().server_env(mysql_harness.new_database())
        self.proc = None
        self._files = []

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self):
        env = dict(os.environ)
        env.update(
            HTTP_PORT=str(self.http_port),
            GRPC_PORT=str(self.grpc_port),
            LISTEN_HOST=LOOPBACK,
            TRANS_CRON_INTERVAL="1",
            LOG_LEVEL="info",
        )
        env.update(self.store_env)
        env.update(self.extra_env)
        err = open(self.stderr_path, "wb")
        out = open(self.stdout_path, "wb")
        self._files = [err, out]
        self.proc = subprocess.Popen(
            [self.binary],
            cwd=str(self.workdir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + SERVER_READY_TIMEOUT
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(
                    "dtm-server exited with code %s before it was ready\n%s" % (code, self.log_tail())
                )
            try:
                r = requests.get(self.base_url + "/api/ping", timeout=1)
                if r.status_code == 200 and r.json() == {"msg": "pong"}:
                    return
                last = "HTTP %d %r" % (r.status_code, r.text[:200])
            except (requests.RequestException, ValueError) as e:
                last = repr(e)
            time.sleep(0.1)
        raise RuntimeError(
            "dtm-server did not answer GET /api/ping with 200 {\"msg\":\"pong\"} within %.0f s (last: %s)\n%s"
            % (SERVER_READY_TIMEOUT, last, self.log_tail())
        )

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for f in self._files:
            try:
                f.close()
            except OSError:
                pass
        self._files = []

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- diagnostics ---------------------------------------------------------------------------------------

    def log_tail(self, max_bytes=20000):
        parts = []
        for label, path in (("stderr", self.stderr_path), ("stdout", self.stdout_path)):
            try:
                for f in self._files:
                    f.flush()
                data = path.read_bytes()
            except OSError as e:
                parts.append("--- %s: unreadable (%s)" % (label, e))
                continue
            if not data:
                continue
            cut = len(data) > max_bytes
            text = data[-max_bytes:].decode("utf-8", "replace")
            parts.append("--- dtm-server %s%s (%s):\n%s" % (label, " (tail)" if cut else "", path, text))
        if self.proc is not None and self.proc.poll() is not None:
            parts.append("--- dtm-server has exited with code %s" % self.proc.returncode)
        return "\n".join(parts) if parts else "(dtm-server wrote nothing)"

    # -- API helpers -------------------------------------------------------------------------------------------

    def query(self, gid):
        r = requests.get(self.api + "/query", params={"gid": gid}, timeout=5)
        assert r.status_code == 200, "query %s -> HTTP %d %s" % (gid, r.status_code, r.text)
        return r.json()

    def wait_for_status(self, gid, wanted=FINAL_STATUSES, timeout=15.0, interval=0.1):
        """Poll `query` until the transaction's status is in `wanted`; return the last query result.

        Fails the test (with the last observed answer) if that does not happen within `timeout` seconds.
        """
        if isinstance(wanted, str):
            wanted = (wanted,)
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = self.query(gid)
            trans = last.get("transaction") or {}
            if trans.get("status") in wanted:
                return last
            if time.monotonic() >= deadline:
                pytest.fail(
                    "transaction %s did not reach %s within %.0f s; last query answer: %s"
                    % (gid, "/".join(wanted), timeout, json.dumps(last))
                )
            time.sleep(interval)


def _server_binary():
    b = os.environ.get("DTM_SERVER_BIN")
    if b:
        return Path(b)
    return REPO_ROOT / ".build" / "debug" / "dtm-server"


@pytest.fixture(scope="session")
def dtm_server(tmp_path_factory):
    """The swift-dtm server under test (one per test session)."""
    global _ACTIVE_SERVER
    binary = _server_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(
            "dtm-server binary not found or not executable at %s; build it (swift build) or set DTM_SERVER_BIN"
            % binary,
            pytrace=False,
        )
    server = DtmServer(binary, tmp_path_factory.mktemp("dtm-server"))
    atexit.register(server.stop)  # belt and braces if the session is torn down abnormally
    try:
        server.start()
    except BaseException as e:
        server.stop()
        pytest.fail("could not start dtm-server: %s" % e, pytrace=False)
    _ACTIVE_SERVER = server
    try:
        yield server
    finally:
        _ACTIVE_SERVER = None
        server.stop()


@pytest.fixture(scope="session")
def dtm(dtm_server):
    """The DTM address as dtmcli users pass it, e.g. http://127.0.0.1:PORT/api/dtmsvr."""
    return dtm_server.api


# ----------------------------------------------------------------------------------------------------------------
# Branch (business) service
# ----------------------------------------------------------------------------------------------------------------


class BranchCall:
    """One request received by the branch service."""

    def __init__(self, method, path, query, query_multi, headers, body):
        self.method = method
        self.path = path  # without query string
        self.query = query  # dict: name -> value (last value if repeated)
        self.query_multi = query_multi  # dict: name -> [values...]
        self.headers = headers  # dict with lower-cased names
        self.body = body  # str (utf-8 decoded, verbatim)
        self.time = time.monotonic()

    @property
    def name(self):
        """Last path segment, e.g. 'TransIn'."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def gid(self):
        return self.query.get("gid")

    @property
    def op(self):
        return self.query.get("op")

    def json(self):
        return json.loads(self.body)

    def as_dict(self):
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "content_type": self.headers.get("content-type"),
            "body": self.body,
        }

    def __repr__(self):
        return "BranchCall(%s %s %s body=%r)" % (self.method, self.path, self.query, self.body)


class Response:
    """What the branch service answers: status code and body (dict/list -> JSON, str/bytes verbatim)."""

    def __init__(self, status=200, body=None, delay=0.0):
        self.status = status
        self.body = {"dtm_result": "SUCCESS"} if body is None else body
        self.delay = delay

    def encode(self):
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body)
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


SUCCESS = Response(200, {"dtm_result": "SUCCESS"})


def failure(reason="FAILURE"):
    """The conventional business failure answer: 409 with a body containing FAILURE."""
    return Response(409, {"error": reason if "FAILURE" in reason else reason + " FAILURE"})


def ongoing(reason="ONGOING"):
    return Response(425, {"error": reason if "ONGOING" in reason else reason + " ONGOING"})


class _Rule:
    def __init__(self, name, responses, gid, op):
        self.name = name
        self.gid = gid
        self.op = op
        self.responses = [Response(*r) if isinstance(r, tuple) else r for r in responses]
        if not self.responses:
            raise ValueError("a rule needs at least one response")
        self.used = 0

    def matches(self, call):
        return (
            call.name == self.name
            and (self.gid is None or call.gid == self.gid)
            and (self.op is None or call.op == self.op)
        )

    def next_response(self, call):
        # Consumed in order; the last one is repeated forever.
        r = self.responses[min(self.used, len(self.responses) - 1)]
        self.used += 1
        if callable(r):
            r = r(call)
        return r


class BranchServer:
    """A threaded stdlib HTTP server that records calls and answers by rules."""

    def __init__(self):
        self._lock = threading.Lock()
        self._calls = []
        self._rules = []
        handler = self._make_handler()
        self.httpd = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = "http://%s:%d" % (LOOPBACK, self.port)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="branch-service", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    # -- rules & records -----------------------------------------------------------------------------------

    def url(self, name, prefix="/api/busi"):
        return "%s%s/%s" % (self.base_url, prefix, name)

    def on(self, name, *responses, gid=None, op=None):
        """Answer calls whose last path segment is `name` (optionally only for `gid` / `op`) with `responses`.

        Each response is a Response, a tuple (status, body[, delay]) or a callable taking the BranchCall and
        returning a Response; they are used in order and the last one repeats.  Later rules take precedence over
        earlier ones.  Example: busi.on("TransIn", (409, {"error": "reason:insufficient. FAILURE"})).
        """
        with self._lock:
            self._rules.insert(0, _Rule(name, responses, gid, op))

    def reset_rules(self):
        with self._lock:
            self._rules = []

    def calls(self, gid=None):
        with self._lock:
            return [c for c in self._calls if gid is None or c.gid == gid]

    def call_count(self):
        with self._lock:
            return len(self._calls)

    def wait_for_calls(self, gid, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            got = self.calls(gid)
            if len(got) >= count or time.monotonic() >= deadline:
                return got
            time.sleep(0.05)

    def _respond_for(self, call):
        with self._lock:
            self._calls.append(call)
            rule = next((r for r in self._rules if r.matches(call)), None)
            resp = rule.next_response(call) if rule is not None else SUCCESS
        return resp

    def _make_handler(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "dtm-interop-busi/1.0"

            def log_message(self, fmt, *args):  # keep pytest output clean
                pass

            def _read_body(self):
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunks = []
                    while True:
                        size_line = self.rfile.readline().strip()
                        size = int(size_line.split(b";", 1)[0] or b"0", 16)
                        if size == 0:
                            # trailers until an empty line
                            while self.rfile.readline().strip():
                                pass
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()  # CRLF after each chunk
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length > 0 else b""

            def _handle(self):
                raw = self._read_body()
                parts = urllib.parse.urlsplit(self.path)
                pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
                query_multi = {}
                for k, v in pairs:
                    query_multi.setdefault(k, []).append(v)
                headers = {k.lower(): v for k, v in self.headers.items()}
                call = BranchCall(
                    self.command, parts.path, dict(pairs), query_multi, headers, raw.decode("utf-8", "replace")
                )
                resp = owner._respond_for(call)
                if resp.delay:
                    time.sleep(resp.delay)
                payload = resp.encode()
                self.send_response(resp.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        return Handler


@pytest.fixture(scope="session")
def branch_server():
    """The shared branch service (one per session, free loopback port)."""
    global _ACTIVE_BRANCH_SERVER
    srv = BranchServer().start()
    _ACTIVE_BRANCH_SERVER = srv
    try:
        yield srv
    finally:
        _ACTIVE_BRANCH_SERVER = None
        srv.stop()


@pytest.fixture
def busi(branch_server, request):
    """The branch service with no rules (everything answers 200 SUCCESS) at the start of each test.

    Calls recorded during the test are attached to the report if the test fails.
    """
    branch_server.reset_rules()
    request.node._busi_first_call = branch_server.call_count()
    try:
        yield branch_server
    finally:
        branch_server.reset_rules()


# ----------------------------------------------------------------------------------------------------------------
# Diagnostics on failure
# ----------------------------------------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.failed:
        if _ACTIVE_SERVER is not None:
            rep.sections.append(("dtm-server log", _ACTIVE_SERVER.log_tail()))
        first = getattr(item, "_busi_first_call", None)
        if _ACTIVE_BRANCH_SERVER is not None and first is not None:
            recorded = _ACTIVE_BRANCH_SERVER.calls()[first:]
            rep.sections.append(
                (
                    "branch calls during this test (%d)" % len(recorded),
                    "\n".join(json.dumps(c.as_dict()) for c in recorded) or "(none)",
                )
            )
    return rep
