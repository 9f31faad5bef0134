#!/usr/bin/env python3
"""Crash test for swift-dtm: kill -9 the coordinator under saga load and prove it never loses an acknowledged
transaction nor breaks saga semantics (spec §4.4, §4.9, §7.2/§7.5, §8.2, §9).

What it does (everything on 127.0.0.1; stdlib only, plus grpcio / grpcio-tools / protobuf for the gRPC share of the
load — without them it warns and runs HTTP only):

1. starts the dtm-server binary ($DTM_SERVER_BIN, else <repo>/.build/release/dtm-server, else
   <repo>/.build/debug/dtm-server) in a fresh temp dir, TRANS_CRON_INTERVAL=1, LOG_LEVEL=warn, on a store:
   ``--store sqlite`` (default) one SQLite file <tmp>/dtm.sqlite; ``--store postgres`` a private PostgreSQL cluster
   (Tests/Interop/pg_harness.py: initdb in /tmp/swift-dtm-pg-…, loopback port; the server creates its schema and
   tables itself); ``--store mysql`` a private MariaDB server (Tests/Interop/mysql_harness.py, the same way, one
   database).  ``--coordinators N`` (N > 1 needs postgres or mysql) starts N dtm-server processes, each
   with its own HTTP and gRPC port, all on the same schema: several coordinators sharing one database;
2. starts a threaded HTTP branch service and a grpcio branch service whose behaviour is chosen by the gid prefix:
   ``ok-…`` every action succeeds; ``fail<K>-…`` the action of step K answers FAILURE (HTTP 409 / gRPC ABORTED);
   ``slow-…`` the action of step 2 answers ONGOING (HTTP 425 / gRPC FAILED_PRECONDITION) twice, then succeeds;
   ``long-…`` (a share set by --long-share, default 5 %) the action of step 1 takes --long-seconds (default 11 s,
   longer than RetryInterval, the cron lease) and succeeds: these sagas ask for retry_interval 1 and
   request_timeout 20, so another coordinator would claim them while that call runs unless the round holds its
   lease for the call (README, Security).  Compensations always succeed.  Some calls sleep 0–300 ms.  Every call of either protocol is logged in memory
   (one log, one sequence; with its start and end on this process' monotonic clock) and appended to
   <tmp>/branch-calls.jsonl; gRPC calls are logged with the HTTP status of the same outcome (200 / 409 / 425 / 404)
   besides their gRPC code, so one set of checks covers both;
3. several client threads submit sagas of 2–4 steps (some with wait_result), each submit to a coordinator drawn at
   random; a share of them (--grpc-share, default a third) is submitted over gRPC (/dtmgimp.Dtm/Submit, Steps JSON
   + BinPayloads) with gRPC branches (127.0.0.1:<port>/busi.Busi/Action<K>, …/Compensate<K>), the rest over HTTP
   with HTTP branches.  A gid is *acknowledged* only when the submit answered 200 / gRPC OK (or, with wait_result,
   409 with dtm_result FAILURE / gRPC ABORTED);
4. each round runs the load for a random 0.5–3 s, then SIGKILLs one coordinator (drawn at random) and restarts it
   on the same ports (if still free) and the same store; the other coordinators keep serving meanwhile;
5. afterwards waits until every stored transaction is succeed/failed (≤ ~120 s; after a natural period that
   covers the cron lease and ONGOING retries, stragglers get POST resetNextCronTime), then checks every
   transaction (lost / stuck / saga-semantics violations; a branch call must also come over the saga's own
   protocol and carry its own step's payload) and the call log for *overlaps*: two calls of the same
   (gid, branch_id, op) that were in progress at the same time.  One coordinator never makes such calls (it calls
   a branch op again only after the previous call answered, and a restarted one waits for the cron lease,
   RetryInterval = 10 s, far longer than a branch call); so an overlap means two coordinators processed one
   transaction at once.  It prints

       rounds=R transactions=N acknowledged=A lost=L stuck=S violations=V overlaps=O
       protocols: http transactions=… acknowledged=… lost=… stuck=… violations=…; grpc transactions=… …
       P passed, F failed

   exiting non-zero if anything is wrong.

gid layout: <kind>-<steps>s-<http|grpc>-r<round>-t<thread>-<seq>, e.g. fail2-3s-grpc-r7-t1-42.

Usage: scripts/crash_test.py [ROUNDS] [--store sqlite|postgres|mysql] [--coordinators N] [--threads N] [--seed S]
                             [--grpc-share F] [--keep] ...
"""

import argparse
import collections
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# grpcio's fork handlers only print "Other threads are currently calling into gRPC, skipping fork() handlers" at
# every server (re)start; the forked child execs dtm-server at once and never uses gRPC.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
try:  # optional: the gRPC share of the load (scripts/setup.sh puts grpcio, grpcio-tools, protobuf in .venv)
    import grpc
    from concurrent import futures
    _GRPC_IMPORT_ERROR = None
except ImportError as _e:  # stdlib-only fallback: HTTP only
    grpc = None
    _GRPC_IMPORT_ERROR = _e

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[1]
FINAL = ("succeed", "failed")
READY_TIMEOUT = 30.0
PROTOCOLS = ("http", "grpc")
PROTO_DIR = REPO_ROOT / "Protos"
GRPC_SUBMIT = "/dtmgimp.Dtm/Submit"
GRPC_BRANCH_SERVICE = "busi.Busi"
# Channels to the coordinator: no proxy from the environment, no transparent retries (every submit is one attempt),
# and quick reconnects after a kill -9 (grpcio's default back-off would idle the gRPC clients for seconds).
GRPC_CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.enable_retries", 0),
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 500),
]
# One outcome, two protocols.  The call log and the checks use the HTTP status; gRPC calls also log their code.
HTTP_STATUS_FOR = {"ok": 200, "fail": 409, "ongoing": 425, "unknown": 404}
GRPC_CODE_FOR = {"ok": "OK", "fail": "ABORTED", "ongoing": "FAILED_PRECONDITION", "unknown": "UNIMPLEMENTED"}


def log(msg):
    print(msg, flush=True)


# ------------------------------------------------------------------------------------------------------------------
# tiny HTTP client (one connection per request, no keep-alive, no proxies)
# ------------------------------------------------------------------------------------------------------------------


def http_request(port, method, path, body=None, timeout=10.0):
    """Returns (status, parsed JSON or raw text). Raises OSError/http.client errors on transport failures."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        headers = {"Connection": "close"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        text = raw.decode("utf-8", "replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return resp.status, parsed
    finally:
        conn.close()


TRANSPORT_ERRORS = (OSError, http.client.HTTPException)


_HANDED_OUT_PORTS = set()
_PORTS_LOCK = threading.Lock()


def free_port(exclude=()):
    """A free loopback TCP port below 32768 (outside Linux' default ephemeral range), never one this process handed
    out before: the coordinators and branch services bind theirs later, so a port free now may be theirs already."""
    for _ in range(1000):
        p = random.randint(20000, 32767)
        with _PORTS_LOCK:
            if p in exclude or p in _HANDED_OUT_PORTS:
                continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOOPBACK, p))
            except OSError:
                continue
        with _PORTS_LOCK:
            _HANDED_OUT_PORTS.add(p)
        return p
    raise RuntimeError("no free port found below 32768")


# ------------------------------------------------------------------------------------------------------------------
# gRPC messages, generated from <repo>/Protos at start-up
# ------------------------------------------------------------------------------------------------------------------


def load_grpc_stubs(out_dir):
    """Returns (stubs, None) or (None, why not).  stubs: DtmRequest, DtmTransOptions, ReqGrpc.

    The same protoc run as Tests/InteropGRPC/grpc_harness.generate_stubs (a copy: the harness imports pytest).
    Only the messages are generated: the client and the branch service call methods on raw bytes."""
    if grpc is None:
        return None, "cannot import grpc (%s)" % _GRPC_IMPORT_ERROR
    try:
        import grpc_tools  # noqa: F401
        from google.protobuf import empty_pb2  # noqa: F401
    except ImportError as e:
        return None, "cannot import grpc_tools / protobuf (%s)" % e
    files = ("dtmgimp.proto", "busi.proto")
    for name in files + ("google/protobuf/empty.proto",):
        if not (PROTO_DIR / name).is_file():
            return None, "missing proto file %s" % (PROTO_DIR / name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # google/protobuf/empty.proto is not generated: the generated code imports it from the protobuf runtime.
    cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I", str(PROTO_DIR), "--python_out=%s" % out_dir] + list(files)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, "grpc_tools.protoc did not run: %s" % e
    if r.returncode != 0:
        return None, "grpc_tools.protoc failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr)
    if str(out_dir) not in sys.path:
        sys.path.insert(0, str(out_dir))
    try:
        import importlib

        mods = {}
        for name in ("dtmgimp_pb2", "busi_pb2"):
            sys.modules.pop(name, None)
            mods[name] = importlib.import_module(name)
        stubs = type("GrpcStubs", (), {})()
        stubs.DtmRequest = mods["dtmgimp_pb2"].DtmRequest
        stubs.DtmTransOptions = mods["dtmgimp_pb2"].DtmTransOptions
        stubs.ReqGrpc = mods["busi_pb2"].ReqGrpc
    except Exception as e:  # version mismatch between generated code and runtime, missing message, ...
        return None, "generated stubs unusable: %s: %s" % (type(e).__name__, e)
    return stubs, None


# ------------------------------------------------------------------------------------------------------------------
# gids
# ------------------------------------------------------------------------------------------------------------------


def parse_gid(gid):
    """gid layout: <kind>-<steps>s-<proto>-r<round>-t<thread>-<seq>, kind = ok | slow | long | fail<K>, proto = http | grpc.

    Returns dict(kind, fail_step, steps, proto) or None for a gid we never generate."""
    try:
        head, steps_part, proto = gid.split("-")[:3]
        steps = int(steps_part.rstrip("s"))
        if proto not in PROTOCOLS:
            return None
        if head in ("ok", "slow", "long"):
            return {"kind": head, "fail_step": None, "steps": steps, "proto": proto}
        if head.startswith("fail"):
            return {"kind": "fail", "fail_step": int(head[4:]), "steps": steps, "proto": proto}
    except (ValueError, IndexError):
        pass
    return None


# ------------------------------------------------------------------------------------------------------------------
# branch service
# ------------------------------------------------------------------------------------------------------------------


class BranchService:
    """The saga branches: a threaded stdlib HTTP server and (with stubs) a grpcio server; logs every call of both."""

    SLOW_ONGOING_TIMES = 2
    GRPC_WORKERS = 64

    def __init__(self, workdir, stubs=None, sleep_probability=0.3, max_sleep=0.3, long_seconds=11.0):
        self.lock = threading.Lock()
        self.seq = 0
        self.calls = collections.defaultdict(list)  # gid -> [call dict]
        self.total = 0
        self.total_by_proto = collections.Counter()
        self.slow_count = collections.Counter()  # gid -> calls of step-2 action so far
        self.sleep_probability = sleep_probability
        self.max_sleep = max_sleep
        self.long_seconds = long_seconds
        self.rng = random.Random()
        self.log_path = Path(workdir) / "branch-calls.jsonl"
        self.log_file = open(self.log_path, "a", encoding="utf-8")
        owner = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256
            allow_reuse_address = True

        class Handler(BaseHTTPRequestHandler):
            server_version = "crash-test-busi/1.0"

            def log_message(self, fmt, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length > 0 else b""
                if len(raw) < length:
                    # The coordinator was killed while sending: like any HTTP server, the service never saw a
                    # whole request, so it neither runs nor records one.
                    log("busi: dropped a request cut short by the kill (%s, %d of %d body bytes)" % (self.path, len(raw), length))
                    self.close_connection = True
                    return
                call, status, body, delay = owner._respond_http(self.command, self.path, raw)
                if delay:
                    time.sleep(delay)
                owner._answered(call)
                payload = json.dumps(body).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the coordinator was killed while we slept

            do_GET = do_POST = do_PUT = _handle

        port = free_port()
        self.httpd = Server((LOOPBACK, port), Handler)
        self.port = self.httpd.server_address[1]
        self.base_url = "http://%s:%d/busi" % (LOOPBACK, self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="branch-service", daemon=True)

        # gRPC: every method path is served as a unary RPC on raw bytes; /busi.Busi/Action<K> and
        # /busi.Busi/Compensate<K> are the branches (the step is in the method, as it is in the HTTP path).
        self.stubs = stubs
        self.grpc_server = None
        self.grpc_port = None
        self.grpc_target = None
        if stubs is not None:
            class AnyMethod(grpc.GenericRpcHandler):
                def service(self, handler_call_details):
                    method = handler_call_details.method

                    def handle(request, context):
                        return owner._handle_grpc(method, request, context)

                    return grpc.unary_unary_rpc_method_handler(handle)

            self.grpc_server = grpc.server(
                futures.ThreadPoolExecutor(max_workers=self.GRPC_WORKERS, thread_name_prefix="grpc-busi"),
                handlers=[AnyMethod()], options=[("grpc.so_reuseport", 0)],
            )
            self.grpc_port = self.grpc_server.add_insecure_port("%s:%d" % (LOOPBACK, free_port(exclude=(port,))))
            if not self.grpc_port:
                raise RuntimeError("could not bind the gRPC branch service on %s" % LOOPBACK)
            self.grpc_target = "%s:%d" % (LOOPBACK, self.grpc_port)

    def start(self):
        self.thread.start()
        if self.grpc_server is not None:
            self.grpc_server.start()

    def stop(self):
        try:
            self.httpd.shutdown()
            self.httpd.server_close()
            if self.grpc_server is not None:
                self.grpc_server.stop(grace=None).wait(timeout=5)
        finally:
            self.thread.join(timeout=5)
            with self.lock:
                self.log_file.close()

    def _respond_http(self, method, raw_path, raw_body):
        parts = urllib.parse.urlsplit(raw_path)
        q = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        segs = parts.path.strip("/").split("/")  # busi/<action|compensate>/<step>
        path_op = segs[1] if len(segs) == 3 else "?"
        try:
            step = int(segs[2]) if len(segs) == 3 else 0
        except ValueError:
            step = 0
        try:
            payload_step = json.loads(raw_body.decode("utf-8")).get("step")
        except (ValueError, AttributeError, UnicodeDecodeError):
            payload_step = "undecodable %r" % raw_body[:60]
        call, outcome, delay = self._record(
            "http", method, q.get("gid", ""), q.get("branch_id"), q.get("op"), q.get("trans_type"),
            parts.path, path_op, step, payload_step)
        body = {
            "ok": {"dtm_result": "SUCCESS"},
            "fail": {"dtm_result": "FAILURE", "message": "step %d fails FAILURE" % step},
            "ongoing": {"dtm_result": "ONGOING"},
            "unknown": {"message": "unknown path"},
        }[outcome]
        return call, HTTP_STATUS_FOR[outcome], body, delay

    def _handle_grpc(self, method, request, context):
        md = {}
        for k, v in context.invocation_metadata():
            md[k.lower()] = v
        service, _, name = method.strip("/").partition("/")
        m = re.fullmatch(r"(Action|Compensate)([0-9]+)", name) if service == GRPC_BRANCH_SERVICE else None
        path_op = m.group(1).lower() if m else "?"
        step = int(m.group(2)) if m else 0
        try:
            payload_step = self.stubs.ReqGrpc.FromString(bytes(request)).Amount
        except Exception:
            payload_step = "undecodable %s" % bytes(request)[:60].hex()
        call, outcome, delay = self._record(
            "grpc", "grpc", md.get("dtm-gid", ""), md.get("dtm-branch_id"), md.get("dtm-op"),
            md.get("dtm-trans_type"), method, path_op, step, payload_step)
        if delay:
            time.sleep(delay)
        self._answered(call)
        if outcome != "ok":
            context.set_code(getattr(grpc.StatusCode, GRPC_CODE_FOR[outcome]))
            context.set_details({"fail": "FAILURE", "ongoing": "ONGOING"}.get(outcome, "unknown method %s" % method))
        return b""  # google.protobuf.Empty

    def _record(self, proto, method, gid, branch_id, op, trans_type, path, path_op, step, payload_step):
        """Logs the call (seq under the lock) and decides its outcome: ok | fail | ongoing | unknown."""
        info = parse_gid(gid)
        with self.lock:
            self.seq += 1
            call = {
                "seq": self.seq,
                "t": time.time(),
                # start and end (t_end: when the answer is written) on the monotonic clock, taken under the lock
                # with seq / resp_seq, so both orders agree: the overlap check compares them
                "t_start": time.monotonic(),
                "t_end": None,
                "proto": proto,
                "gid": gid,
                "branch_id": branch_id,
                "op": op,
                "path": path,
                "path_op": path_op,
                "step": step,
                "payload_step": payload_step,
                "method": method,
                "trans_type": trans_type,
            }
            outcome = "ok"
            if path_op == "action" and info is not None:
                if info["kind"] == "fail" and step == info["fail_step"]:
                    outcome = "fail"
                elif info["kind"] == "slow" and step == 2:
                    self.slow_count[gid] += 1
                    if self.slow_count[gid] <= self.SLOW_ONGOING_TIMES:
                        outcome = "ongoing"
            elif path_op not in ("action", "compensate"):
                outcome = "unknown"
            delay = self.rng.uniform(0, self.max_sleep) if self.rng.random() < self.sleep_probability else 0.0
            if path_op == "action" and info is not None and info["kind"] == "long" and step == 1:
                delay = self.long_seconds
            call["status"] = HTTP_STATUS_FOR[outcome]
            if proto == "grpc":
                call["grpc_code"] = GRPC_CODE_FOR[outcome]
            call["sleep"] = round(delay, 3)
            call["resp_seq"] = None
            self.calls[gid].append(call)
            self.total += 1
            self.total_by_proto[proto] += 1
        return call, outcome, delay

    def _answered(self, call):
        """Called right before the answer is written: every call arriving later has a larger seq than resp_seq."""
        with self.lock:
            self.seq += 1
            call["resp_seq"] = self.seq
            call["t_end"] = time.monotonic()
            if not self.log_file.closed:
                self.log_file.write(json.dumps(call) + "\n")
                self.log_file.flush()

    def calls_for(self, gid):
        with self.lock:
            return list(self.calls.get(gid, ()))

    def gids(self):
        with self.lock:
            return list(self.calls)


# ------------------------------------------------------------------------------------------------------------------
# dtm-server process
# ------------------------------------------------------------------------------------------------------------------


def _die_with_parent():
    """In the child before exec: SIGKILL the server if this script dies (even by SIGKILL). Linux only, best effort."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class DtmServer:
    """One coordinator: a dtm-server process on its own HTTP and gRPC port, (re)started on the store of store_env
    (STORE_DRIVER and the driver's variables), logging to <workdir>/<name>.log."""

    def __init__(self, binary, workdir, store_env, name="dtm-server"):
        self.binary = str(binary)
        self.workdir = Path(workdir)
        self.store_env = dict(store_env)
        self.name = name
        self.http_port = free_port()
        self.grpc_port = free_port(exclude=(self.http_port,))
        self.proc = None
        self.incarnation = 0
        self.unexpected_exits = []
        self.log_path = self.workdir / ("%s.log" % name)
        self._log = None

    def _spawn(self):
        env = dict(os.environ)
        env.update(
            HTTP_PORT=str(self.http_port),
            GRPC_PORT=str(self.grpc_port),
            LISTEN_HOST=LOOPBACK,
            TRANS_CRON_INTERVAL="1",
            LOG_LEVEL="warn",
        )
        env.update(self.store_env)
        self.incarnation += 1
        if self._log is None:
            self._log = open(self.log_path, "ab")
        self._log.write(
            ("\n===== incarnation %d (http %d, grpc %d) at %s =====\n"
             % (self.incarnation, self.http_port, self.grpc_port, time.strftime("%H:%M:%S"))).encode()
        )
        self._log.flush()
        self.proc = subprocess.Popen(
            [self.binary], cwd=str(self.workdir), env=env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        )

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, "exited with code %s" % self.proc.returncode
            try:
                st, body = http_request(self.http_port, "GET", "/api/ping", timeout=1)
                if st == 200 and body == {"msg": "pong"}:
                    return True, ""
                last = "HTTP %d %r" % (st, body)
            except TRANSPORT_ERRORS as e:
                last = repr(e)
            time.sleep(0.05)
        return False, "not ready within %.0f s (last: %s)" % (READY_TIMEOUT, last)

    def start(self):
        """Starts (or restarts) the server; same ports if possible, else fresh ones. Returns seconds taken."""
        t0 = time.monotonic()
        errors = []
        for attempt in range(3):
            self._spawn()
            ok, why = self._wait_ready()
            if ok:
                return time.monotonic() - t0
            errors.append(why)
            self._kill_proc()
            # Perhaps the port was taken meanwhile: move to fresh ports.
            self.http_port = free_port()
            self.grpc_port = free_port(exclude=(self.http_port,))
        raise RuntimeError("%s could not be started: %s\n%s" % (self.name, "; ".join(errors), self.log_tail()))

    def check_alive(self, context):
        if self.proc is not None and self.proc.poll() is not None:
            self.unexpected_exits.append((context, self.proc.returncode))
            return False
        return True

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        pid = self.proc.pid
        os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        return pid

    def _kill_proc(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kill_proc()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, max_bytes=6000):
        try:
            if self._log is not None:
                self._log.flush()
            data = self.log_path.read_bytes()
        except OSError:
            return "(no server log)"
        return data[-max_bytes:].decode("utf-8", "replace")

    # -- API --------------------------------------------------------------------------------------------------------

    def api(self, method, name, body=None, timeout=10.0):
        return http_request(self.http_port, method, "/api/dtmsvr/" + name, body=body, timeout=timeout)

    def query(self, gid):
        st, body = self.api("GET", "query?" + urllib.parse.urlencode({"gid": gid}))
        if st != 200 or not isinstance(body, dict):
            raise RuntimeError("query %s -> HTTP %d %r" % (gid, st, body))
        return body

    def all_transactions(self):
        """Every stored transaction (GET all, limit=1000, following next_position)."""
        out = []
        position = ""
        for _ in range(10000):
            params = {"limit": "1000"}
            if position:
                params["position"] = position
            st, body = self.api("GET", "all?" + urllib.parse.urlencode(params), timeout=30)
            if st != 200 or not isinstance(body, dict):
                raise RuntimeError("all -> HTTP %d %r" % (st, body))
            out.extend(body.get("transactions") or [])
            nxt = body.get("next_position") or ""
            if not nxt or nxt == position:
                return out
            position = nxt
        raise RuntimeError("all: too many pages")


class Coordinators:
    """The N coordinators of the run (one store).  The API calls of the test itself (query, all, resetNextCronTime)
    go to the first live one: they all see the same store."""

    def __init__(self, servers):
        self.servers = list(servers)

    def __len__(self):
        return len(self.servers)

    def __iter__(self):
        return iter(self.servers)

    def start(self):
        for s in self.servers:
            s.start()

    def stop(self):
        for s in self.servers:
            s.stop()

    def check_alive(self, context):
        """Records every coordinator that exited on its own; False if any did."""
        return all([s.check_alive(context) for s in self.servers])

    @property
    def unexpected_exits(self):
        return [(s.name,) + e for s in self.servers for e in s.unexpected_exits]

    def log_tail(self):
        if len(self.servers) == 1:
            return self.servers[0].log_tail()
        return "\n".join("----- %s (%s) -----\n%s" % (s.name, s.log_path, s.log_tail(3000)) for s in self.servers)

    def _live(self):
        live = [s for s in self.servers if s.alive()]
        if not live:
            raise RuntimeError("no coordinator is running")
        return live[0]

    def api(self, method, name, body=None, timeout=10.0):
        return self._live().api(method, name, body=body, timeout=timeout)

    def query(self, gid):
        return self._live().query(gid)

    def all_transactions(self):
        return self._live().all_transactions()

    def describe_ports(self):
        return ", ".join("%s http %d / grpc %d" % (s.name, s.http_port, s.grpc_port) for s in self.servers)


# ------------------------------------------------------------------------------------------------------------------
# load
# ------------------------------------------------------------------------------------------------------------------


class Load:
    def __init__(self, coordinators, busi, threads, seed, pace, grpc_share=0.0, long_share=0.0):
        self.coordinators = coordinators
        self.busi = busi
        self.stubs = busi.stubs
        self.grpc_share = grpc_share if busi.stubs is not None else 0.0
        self.long_share = long_share
        self.nthreads = threads
        self.pace = pace
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.attempts = {}  # gid -> dict
        self.round = 0
        self.threads = []
        self.seed = seed

    def start(self):
        for i in range(self.nthreads):
            t = threading.Thread(target=self._run, args=(i,), name="client-%d" % i, daemon=True)
            self.threads.append(t)
            t.start()

    def stop(self, timeout=40.0):
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def _saga(self, rng, tid, seq):
        """Returns (gid, proto, wait_result, request): a JSON body (http) or serialized DtmRequest bytes (grpc)."""
        steps = rng.randint(2, 4)
        r = rng.random()
        if rng.random() < self.long_share:
            kind, head = "long", "long"
        elif r < 0.5:
            kind, head = "ok", "ok"
        elif r < 0.8:
            k = rng.randint(1, steps)
            kind, head = "fail", "fail%d" % k
        else:
            kind, head = "slow", "slow"
        proto = "grpc" if rng.random() < self.grpc_share else "http"
        gid = "%s-%ds-%s-r%d-t%d-%d" % (head, steps, proto, self.round, tid, seq)
        wait = rng.random() < 0.3 and kind != "long"  # a submit waiting 11 s would outlast the client's timeout
        if proto == "grpc":
            pb = self.stubs
            target = self.busi.grpc_target
            step_list = [
                {"action": "%s/%s/Action%d" % (target, GRPC_BRANCH_SERVICE, i),
                 "compensate": "%s/%s/Compensate%d" % (target, GRPC_BRANCH_SERVICE, i)}
                for i in range(1, steps + 1)
            ]
            req = pb.DtmRequest(
                Gid=gid, TransType="saga", Steps=json.dumps(step_list, separators=(",", ":")),
                BinPayloads=[pb.ReqGrpc(Amount=i).SerializeToString() for i in range(1, steps + 1)],
                TransOptions=pb.DtmTransOptions(
                    WaitResult=wait, RetryInterval=1 if kind == "long" else 0, RequestTimeout=20 if kind == "long" else 0),
            )
            return gid, proto, wait, req.SerializeToString()
        body = {
            "gid": gid,
            "trans_type": "saga",
            "steps": [
                {"action": "%s/action/%d" % (self.busi.base_url, i), "compensate": "%s/compensate/%d" % (self.busi.base_url, i)}
                for i in range(1, steps + 1)
            ],
            "payloads": [json.dumps({"step": i, "amount": 30}) for i in range(1, steps + 1)],
            "wait_result": wait,
            "custom_data": "",
            "protocol": "",
            "concurrent": False,
        }
        if kind == "long":
            body.update(retry_interval=1, request_timeout=20)
        return gid, proto, wait, body

    # gRPC answers that mean "no answer from a live coordinator" (killed, restarting, not listening yet)
    GRPC_TRANSPORT_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED")

    def _grpc_submit(self, server, chan, request, rec, timeout):
        """One /dtmgimp.Dtm/Submit on this thread's channel to server (re-created when it moved to another port)."""
        port = server.grpc_port
        if chan.get("port") != port:
            if chan.get("channel") is not None:
                chan["channel"].close()
            channel = grpc.insecure_channel("%s:%d" % (LOOPBACK, port), options=GRPC_CHANNEL_OPTIONS)
            chan.update(port=port, channel=channel, submit=channel.unary_unary(GRPC_SUBMIT))
        try:
            chan["submit"](request, timeout=timeout)
            code, details = "OK", ""
        except grpc.RpcError as e:
            code = e.code().name if e.code() is not None else "UNKNOWN"
            details = e.details() or ""
        rec["grpc_code"] = code
        rec["answer"] = details
        if code == "OK":
            rec["acked"] = True
        elif rec["wait_result"] and code == "ABORTED":  # FAILURE (dtm-spec §3.2: FAILURE -> ABORTED)
            rec["acked"] = True
        elif code in self.GRPC_TRANSPORT_CODES:
            rec["error"] = "gRPC %s: %s" % (code, details)
            time.sleep(0.02)  # the server is (re)starting

    def _run(self, tid):
        rng = random.Random(None if self.seed is None else self.seed * 1000 + tid)
        servers = self.coordinators.servers
        seq = 0
        chans = [{} for _ in servers]  # this thread's gRPC channel to each coordinator
        try:
            while not self.stop_event.is_set():
                seq += 1
                gid, proto, wait, request = self._saga(rng, tid, seq)
                # one coordinator per submit, at random (no draw with one: a seed gives the same gids as before)
                ci = rng.randrange(len(servers)) if len(servers) > 1 else 0
                server = servers[ci]
                rec = {"gid": gid, "proto": proto, "wait_result": wait, "round": self.round, "acked": False,
                       "coordinator": server.name, "status_code": None, "grpc_code": None, "answer": None,
                       "error": None, "t_sent": time.time()}
                with self.lock:
                    self.attempts[gid] = rec
                timeout = 20.0 if wait else 10.0
                if proto == "grpc":
                    self._grpc_submit(server, chans[ci], request, rec, timeout)
                else:
                    try:
                        st, ans = server.api("POST", "submit", body=request, timeout=timeout)
                        rec["status_code"] = st
                        rec["answer"] = ans
                        if st == 200:
                            rec["acked"] = True
                        elif wait and st == 409 and isinstance(ans, dict) and ans.get("dtm_result") == "FAILURE":
                            rec["acked"] = True
                    except TRANSPORT_ERRORS as e:
                        rec["error"] = "%s: %s" % (type(e).__name__, e)
                        time.sleep(0.02)  # the server is (re)starting
                rec["t_done"] = time.time()
                if self.pace:
                    time.sleep(rng.uniform(0, self.pace))
        finally:
            for chan in chans:
                if chan.get("channel") is not None:
                    chan["channel"].close()

    def snapshot(self):
        with self.lock:
            return dict(self.attempts)


# ------------------------------------------------------------------------------------------------------------------
# checks
# ------------------------------------------------------------------------------------------------------------------


def check_transaction(gid, info, query, calls, attempt):
    """Returns a list of problem strings (empty = fine) for a stored transaction."""
    problems = []
    trans = query.get("transaction") or {}
    branches = query.get("branches") or []
    status = trans.get("status")
    steps = info["steps"]
    kind = info["kind"]
    k = info["fail_step"]

    if trans.get("trans_type") != "saga":
        problems.append("trans_type is %r, not saga" % trans.get("trans_type"))

    # -- branch rows: exactly compensate+action per step, nothing else ("no half-stored transaction") ----------
    rows = {}
    for b in branches:
        key = (b.get("branch_id"), b.get("op"))
        if key in rows:
            problems.append("duplicate branch row %s/%s" % key)
        rows[key] = b.get("status")
    expected = {("%02d" % i, op) for i in range(1, steps + 1) for op in ("compensate", "action")}
    if len(branches) != 2 * steps or set(rows) != expected:
        problems.append("has %d branch rows %s, expected exactly %d (compensate+action for steps 1..%d)"
                        % (len(branches), sorted(rows), 2 * steps, steps))

    # -- calls ----------------------------------------------------------------------------------------------------
    actions = collections.defaultdict(list)
    comps = collections.defaultdict(list)
    for c in calls:
        if c["path_op"] == "action":
            actions[c["step"]].append(c)
        elif c["path_op"] == "compensate":
            comps[c["step"]].append(c)
        else:
            problems.append("unexpected call %s" % c["path"])
        want_bid = "%02d" % c["step"]
        if c["branch_id"] != want_bid or c["op"] != c["path_op"]:
            problems.append("call seq %d to %s carried branch_id=%r op=%r (expected %s/%s)"
                            % (c["seq"], c["path"], c["branch_id"], c["op"], want_bid, c["path_op"]))
        if not (1 <= c["step"] <= steps):
            problems.append("call seq %d to step %d outside 1..%d" % (c["seq"], c["step"], steps))
        if c.get("proto") != info["proto"]:
            problems.append("call seq %d to %s came over %s, the saga's branches are %s"
                            % (c["seq"], c["path"], c.get("proto"), info["proto"]))
        if c.get("payload_step") != c["step"]:
            problems.append("call seq %d to %s (step %d) carried the payload of step %r"
                            % (c["seq"], c["path"], c["step"], c.get("payload_step")))

    def first_seq(lst, status=None):
        s = [c["seq"] for c in lst if status is None or c["status"] == status]
        return min(s) if s else None

    def first_answer(lst, status):
        s = [c["resp_seq"] for c in lst if c["status"] == status and c["resp_seq"] is not None]
        return min(s) if s else None

    # actions strictly in order: action j+1 only after action j answered 200
    for j in range(2, steps + 1):
        fj = first_seq(actions[j])
        if fj is None:
            continue
        prev_ok = first_answer(actions[j - 1], 200)
        if prev_ok is None or fj < prev_ok:
            problems.append("action %d called (seq %d) before action %d had answered success (%s)"
                            % (j, fj, j - 1, prev_ok))

    # -- per kind -------------------------------------------------------------------------------------------
    if kind in ("ok", "slow", "long"):
        if status != "succeed":
            problems.append("%s saga ended %r, expected succeed" % (kind, status))
        if comps:
            problems.append("%s saga had compensations called: steps %s" % (kind, sorted(comps)))
        if status == "succeed":
            for j in range(1, steps + 1):
                if not actions[j]:
                    problems.append("succeeded but action %d was never called" % j)
                elif first_answer(actions[j], 200) is None:
                    problems.append("succeeded but action %d never answered success" % j)
                if rows.get(("%02d" % j, "action")) != "succeed":
                    problems.append("succeeded but action row %02d is %r" % (j, rows.get(("%02d" % j, "action"))))
    else:
        if status != "failed":
            problems.append("fail%d saga ended %r, expected failed" % (k, status))
        late = sorted(j for j in actions if j > k and actions[j])
        if late:
            problems.append("actions after the failing step %d were called: steps %s" % (k, late))
        bad_comp = sorted(j for j in comps if j > k and comps[j])
        if bad_comp:
            problems.append("compensations of steps after the failing step %d were called: %s" % (k, bad_comp))
        failed_answer = first_answer(actions[k], 409)
        first_comp = first_seq([c for j in comps for c in comps[j]])
        if first_comp is not None and (failed_answer is None or first_comp < failed_answer):
            problems.append("compensation called (seq %d) before action %d had answered FAILURE (%s)"
                            % (first_comp, k, failed_answer))
        if status == "failed":
            if not actions[k]:
                problems.append("failed but the failing action %d was never called" % k)
            for j in range(1, k + 1):
                if not comps[j]:
                    problems.append("failed but compensation of step %d was never called" % j)
        for j in range(1, k):
            fj, fj1 = first_seq(comps[j]), first_seq(comps[j + 1])
            if fj is None:
                continue
            if fj1 is None or fj1 > fj:
                problems.append("compensation %d (first seq %d) was called before compensation %d (first seq %s): "
                                "not reverse order" % (j, fj, j + 1, fj1))
            else:
                done = first_answer(comps[j + 1], 200)
                if done is None or fj < done:
                    problems.append("compensation %d started (seq %d) before compensation %d had answered (%s)"
                                    % (j, fj, j + 1, done))
        if status == "failed":
            for j in range(1, steps + 1):
                a = rows.get(("%02d" % j, "action"))
                c = rows.get(("%02d" % j, "compensate"))
                want_a = "succeed" if j < k else ("failed" if j == k else "prepared")
                want_c = "succeed" if j <= k else "prepared"
                if a != want_a or c != want_c:
                    problems.append("step %d rows action=%r compensate=%r, expected %s/%s" % (j, a, c, want_a, want_c))
        if attempt and attempt["acked"] and attempt["wait_result"] and (
                attempt.get("status_code") == 200 or attempt.get("grpc_code") == "OK"):
            problems.append("submit with wait_result answered success (%s) for a saga that must fail"
                            % ("HTTP 200" if attempt.get("status_code") == 200 else "gRPC OK"))
    # Not checked: a wait_result submit answering FAILURE for a saga that then succeeds.  DTM answers
    # "wait result not return success: FAILURE" whenever the first round did not end in succeed (a slow saga's
    # ONGOING step), and swift-dtm does the same.
    return problems


def find_overlaps(calls):
    """Pairs (a, b) of calls of one transaction with the same (branch_id, op) that were in progress at the same time:
    b started (t_start, seq) before a ended (t_end, resp_seq; a call not answered yet has not ended).

    One coordinator calls a branch op again only after the previous call answered, and after a crash the next one
    waits for the cron lease (RetryInterval, 10 s) while a branch call lasts at most ~0.3 s: an overlap means two
    coordinators processed the transaction at once."""
    by_key = collections.defaultdict(list)
    for c in calls:
        by_key[(c.get("branch_id"), c.get("op"))].append(c)
    pairs = []
    for key in sorted(by_key, key=repr):
        lst = sorted(by_key[key], key=lambda c: (c["t_start"], c["seq"]))
        for i, a in enumerate(lst):
            a_end = (a["t_end"], a["resp_seq"]) if a["t_end"] is not None else (float("inf"), 0)
            for b in lst[i + 1:]:
                if (b["t_start"], b["seq"]) >= a_end:
                    break  # lst is sorted by start: every later call starts after a ended too
                pairs.append((a, b))
    return pairs


def describe_overlap(a, b):
    return ("branch %s/%s: call seq %d (%.3f–%s) overlaps call seq %d (%.3f–%s)"
            % (a.get("branch_id"), a.get("op"), a["seq"], a["t_start"],
               "%.3f" % a["t_end"] if a["t_end"] is not None else "unanswered", b["seq"], b["t_start"],
               "%.3f" % b["t_end"] if b["t_end"] is not None else "unanswered"))


def describe(gid, attempt, calls, query):
    lines = ["  gid %s" % gid]
    if attempt:
        lines.append("    submit: %s to %s round %s wait_result=%s acked=%s %s answer=%s error=%s"
                     % (attempt.get("proto"), attempt.get("coordinator"), attempt["round"], attempt["wait_result"],
                        attempt["acked"],
                        "grpc=%s" % attempt.get("grpc_code") if attempt.get("proto") == "grpc"
                        else "http=%s" % attempt["status_code"],
                        json.dumps(attempt["answer"])[:300] if attempt["answer"] is not None else None, attempt["error"]))
    else:
        lines.append("    submit: never sent by this run")
    if calls:
        lines.append("    calls (seq proto op step -> http-equivalent status [answer seq] wall clock, monotonic "
                     "start–end):")
        for c in calls:
            lines.append("      %6d %-4s %-10s %d -> %d%s [%s] %s %.3f–%s%s" % (
                c["seq"], c.get("proto"), c["path_op"], c["step"], c["status"],
                " %s" % c["grpc_code"] if c.get("grpc_code") else "", c["resp_seq"],
                time.strftime("%H:%M:%S", time.localtime(c["t"])) + (".%03d" % int((c["t"] % 1) * 1000)),
                c["t_start"], "%.3f" % c["t_end"] if c["t_end"] is not None else "?",
                " sleep %.3f" % c["sleep"] if c["sleep"] else ""))
    else:
        lines.append("    calls: none")
    if query is None:
        lines.append("    query: (not stored)")
    else:
        t = query.get("transaction") or {}
        keep = {k: t.get(k) for k in ("status", "rollback_reason", "create_time", "update_time", "next_cron_time",
                                      "next_cron_interval", "finish_time", "rollback_time") if k in t}
        lines.append("    query transaction: %s" % json.dumps(keep))
        lines.append("    query branches: %s" % ", ".join(
            "%s/%s=%s" % (b.get("branch_id"), b.get("op"), b.get("status")) for b in query.get("branches") or []))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------------------------


def pick_binary():
    b = os.environ.get("DTM_SERVER_BIN")
    if b:
        return Path(b)
    rel = REPO_ROOT / ".build" / "release" / "dtm-server"
    if rel.is_file() and os.access(rel, os.X_OK):
        return rel
    return REPO_ROOT / ".build" / "debug" / "dtm-server"


def wait_quiet(coordinators, total_timeout, natural_wait, workdir):
    """Waits until every stored transaction is succeed/failed (asking any live coordinator).

    Returns (stored list, gids that needed a reset)."""
    start = time.monotonic()
    nudged = set()
    nudge_log = Path(workdir) / "nudged.jsonl"
    last_report = start
    while True:
        if not coordinators.check_alive("quiesce"):
            raise RuntimeError("a dtm-server died on its own while finishing the transactions\n" + coordinators.log_tail())
        stored = coordinators.all_transactions()
        open_ = [t["gid"] for t in stored if t.get("status") not in FINAL]
        now = time.monotonic()
        if not open_:
            log("quiet after %.1f s: %d transactions, all final" % (now - start, len(stored)))
            return stored, nudged
        if now - start >= total_timeout:
            log("NOT quiet after %.1f s: %d of %d transactions unfinished" % (now - start, len(open_), len(stored)))
            return stored, nudged
        if now - last_report >= 10:
            log("  waiting: %d of %d transactions unfinished (%.0f s)" % (len(open_), len(stored), now - start))
            last_report = now
        if now - start >= natural_wait:
            # Stragglers beyond the cron lease + ONGOING retries (spec §9.3): make them due now.
            by_gid = {t["gid"]: t for t in stored}
            for gid in open_[:200]:
                try:
                    if gid not in nudged:
                        with open(nudge_log, "a", encoding="utf-8") as f:
                            f.write(json.dumps(dict(by_gid[gid], nudged_at=time.time())) + "\n")
                    coordinators.api("POST", "resetNextCronTime", body={"gid": gid})
                    nudged.add(gid)
                except TRANSPORT_ERRORS:
                    pass
            time.sleep(2.0)
        else:
            time.sleep(1.0)


def start_store(args, workdir):
    """Returns (store env for every coordinator, PostgreSQL cluster or None, what to name in the start-up line)."""
    if args.store == "sqlite":
        store_file = Path(workdir) / "dtm.sqlite"
        return dict(STORE_DRIVER="sqlite", STORE_FILE=str(store_file)), None, "SQLite %s" % store_file
    pg_dir = str(REPO_ROOT / "Tests" / "Interop")
    if pg_dir not in sys.path:
        sys.path.insert(0, pg_dir)
    if args.store == "mysql":
        import mysql_harness  # stdlib only

        # Only coordinators get killed, never MariaDB: flushing its log at every commit would only slow the run down.
        server = mysql_harness.MySQLServer(durable=False).start()
        database = mysql_harness.new_database()
        return (server.server_env(database), server,
                "MySQL (MariaDB) %s:%d database %s (server dir %s)" % (LOOPBACK, server.port, database, server.dir))
    import pg_harness  # stdlib only

    # Only coordinators get killed, never PostgreSQL: its fsync would only slow the run down.
    cluster = pg_harness.PostgresCluster(fsync=False).start()
    schema = pg_harness.new_schema()
    return (cluster.server_env(schema), cluster,
            "PostgreSQL %s:%d schema %s (cluster dir %s)" % (LOOPBACK, cluster.port, schema, cluster.dir))


def run(args):
    binary = pick_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise RuntimeError("dtm-server binary not found or not executable: %s (set DTM_SERVER_BIN)" % binary)
    if args.seed is not None:
        random.seed(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="dtm-crash-"))
    log("crash test: %d rounds, %d coordinator%s on %s, binary %s, workdir %s"
        % (args.rounds, args.coordinators, "s" if args.coordinators > 1 else "", args.store, binary, workdir))
    cluster = None
    coordinators = Coordinators([])
    busi = None
    load = None
    ok = False
    try:
        store_env, cluster, store_desc = start_store(args, workdir)
        log("store: %s" % store_desc)
        names = ["dtm-server"] if args.coordinators == 1 else ["dtm-server-%d" % i for i in range(1, args.coordinators + 1)]
        coordinators = Coordinators(DtmServer(binary, workdir, store_env, name) for name in names)
        stubs = None
        if args.grpc_share > 0:
            stubs, why = load_grpc_stubs(workdir / "grpc-stubs")
            if stubs is None:
                log("WARNING: gRPC unavailable (%s): running the HTTP load only. Use the venv of scripts/setup.sh "
                    "(.venv/bin/python, which scripts/crash-test.sh picks) for HTTP and gRPC." % why)
        busi = BranchService(workdir, stubs=stubs, long_seconds=args.long_seconds)
        busi.start()
        coordinators.start()
        log("%s up; branch services on http %d / grpc %s; gRPC share of the load %.2f"
            % (coordinators.describe_ports(), busi.port, busi.grpc_port, args.grpc_share if stubs else 0.0))
        load = Load(coordinators, busi, args.threads, args.seed, args.pace, grpc_share=args.grpc_share, long_share=args.long_share)
        load.round = 1
        load.start()
        prev = {}
        for r in range(1, args.rounds + 1):
            load.round = r
            dur = random.uniform(0.5, 3.0)
            time.sleep(dur)
            if not coordinators.check_alive("round %d" % r):
                raise RuntimeError("a dtm-server died on its own during round %d\n%s" % (r, coordinators.log_tail()))
            victim = random.choice(coordinators.servers)
            pid = victim.kill9()
            killed_at = time.time()
            restart = victim.start()
            snap = load.snapshot()
            new = {g: a for g, a in snap.items() if g not in prev}
            prev = snap
            acked = sum(1 for a in new.values() if a["acked"])
            inflight = sum(1 for a in snap.values()
                           if a.get("coordinator") == victim.name and a["t_sent"] < killed_at
                           and (a.get("t_done") is None or a["t_done"] >= killed_at))
            log("round %d/%d: load %.2f s, submitted %d, acknowledged %d, not acknowledged %d (%d in flight at the kill), "
                "killed %spid %d, restarted in %.2f s (pid %d%s), branch calls so far %d"
                % (r, args.rounds, dur, len(new), acked, len(new) - acked, inflight,
                   "%s " % victim.name if len(coordinators) > 1 else "", pid, restart, victim.proc.pid,
                   "" if len(coordinators) == 1 else ", http %d / grpc %d" % (victim.http_port, victim.grpc_port),
                   busi.total))
        stuck_threads = load.stop()
        if stuck_threads:
            log("warning: client threads still running after stop: %s" % stuck_threads)
        attempts = load.snapshot()
        log("load stopped: %d submits, %d acknowledged; waiting for all transactions to finish"
            % (len(attempts), sum(1 for a in attempts.values() if a["acked"])))
        stored, nudged = wait_quiet(coordinators, args.quiesce_timeout, args.natural_wait, workdir)
        time.sleep(0.5)  # let the last branch answers reach the log
        stored_gids = {t["gid"] for t in stored}
        acked_gids = {g for g, a in attempts.items() if a["acked"]}
        all_gids = sorted(stored_gids | acked_gids)

        lost, stuck, violating = [], [], []
        details = []
        for gid in all_gids:
            attempt = attempts.get(gid)
            calls = busi.calls_for(gid)
            query = coordinators.query(gid)
            if query.get("transaction") is None:
                # Not in the store: lost if it was acknowledged (gids listed by `all` are always queryable).
                lost.append(gid)
                why = "acknowledged but not in the store" if gid in acked_gids else "listed by all but query finds nothing"
                details.append(("LOST", gid, [why], attempt, calls, None))
                continue
            info = parse_gid(gid)
            if info is None:
                violating.append(gid)
                details.append(("VIOLATION", gid, ["unknown gid in the store"], attempt, calls, query))
                continue
            problems = check_transaction(gid, info, query, calls, attempt)
            if gid not in stored_gids:
                problems.append("query finds it but GET all did not list it")
            status = (query.get("transaction") or {}).get("status")
            if status not in FINAL:
                stuck.append(gid)
                details.append(("STUCK", gid, ["status %r at the end" % status] + problems, attempt, calls, query))
            elif problems:
                violating.append(gid)
                details.append(("VIOLATION", gid, problems, attempt, calls, query))

        # Overlapping calls of one branch op, over every gid the branch services saw (stored or not).
        overlaps = []  # (gid, a, b)
        for gid in sorted(busi.gids()):
            calls = busi.calls_for(gid)
            pairs = find_overlaps(calls)
            overlaps.extend((gid, a, b) for a, b in pairs)
            if pairs:
                query = coordinators.query(gid)
                details.append(("OVERLAP", gid, [describe_overlap(a, b) for a, b in pairs], attempts.get(gid), calls,
                                query if query.get("transaction") is not None else None))
        overlap_gids = {gid for gid, _, _ in overlaps}

        # Sanity: acknowledged gids the store did not list but query finds are already covered (query used).
        for label, gid, problems, attempt, calls, query in details:
            log("%s %s:" % (label, gid))
            for p in problems:
                log("    - %s" % p)
            log(describe(gid, attempt, calls, query))

        counts = collections.Counter()
        for gid in stored_gids:
            info = parse_gid(gid)
            counts[info["kind"] if info else "?"] += 1
        final = collections.Counter(t.get("status") for t in stored)
        log("store: %d transactions (%s), statuses %s; branch calls %d; unacknowledged submits %d (%d of them stored)"
            % (len(stored), ", ".join("%s=%d" % kv for kv in sorted(counts.items())),
               dict(final), busi.total, len(attempts) - len(acked_gids),
               len(stored_gids - acked_gids)))
        odd = collections.Counter()
        for a in attempts.values():
            if not a["acked"] and a["status_code"] is not None:
                odd["HTTP %d" % a["status_code"]] += 1
            elif not a["acked"] and a.get("grpc_code") and a.get("error") is None:
                odd["gRPC %s" % a["grpc_code"]] += 1
        if odd:
            log("note: unacknowledged submits that got an HTTP answer: %s" % dict(odd))
        if nudged:
            log("note: %d transactions were still unfinished after %.0f s and got resetNextCronTime "
                "(their state then: %s/nudged.jsonl): %s"
                % (len(nudged), args.natural_wait, workdir, " ".join(sorted(nudged)[:50])))
        if coordinators.unexpected_exits:
            log("ERROR: dtm-server exited on its own: %s" % coordinators.unexpected_exits)

        n = len(all_gids)
        bad_gids = set(lost) | set(stuck) | set(violating) | overlap_gids
        log("rounds=%d transactions=%d acknowledged=%d lost=%d stuck=%d violations=%d overlaps=%d"
            % (args.rounds, n, len(acked_gids), len(lost), len(stuck), len(violating), len(overlaps)))

        def proto_of(gid):
            info = parse_gid(gid)
            return info["proto"] if info else "?"

        parts = []
        for proto in PROTOCOLS + ("?",):
            tx = [g for g in all_gids if proto_of(g) == proto]
            if proto == "?" and not tx:
                continue
            parts.append("%s transactions=%d acknowledged=%d lost=%d stuck=%d violations=%d submits=%d branch_calls=%d"
                         % (proto, len(tx), sum(1 for g in tx if g in acked_gids),
                            sum(1 for g in lost if proto_of(g) == proto), sum(1 for g in stuck if proto_of(g) == proto),
                            sum(1 for g in violating if proto_of(g) == proto),
                            sum(1 for a in attempts.values() if a.get("proto") == proto),
                            busi.total_by_proto.get(proto, 0)))
        log("protocols: " + "; ".join(parts))
        if len(coordinators) > 1:
            log("coordinators: " + "; ".join(
                "%s submits=%d acknowledged=%d incarnations=%d"
                % (s.name, sum(1 for a in attempts.values() if a.get("coordinator") == s.name),
                   sum(1 for a in attempts.values() if a.get("coordinator") == s.name and a["acked"]), s.incarnation)
                for s in coordinators))
        failed = len(bad_gids) + len(coordinators.unexpected_exits)
        log("%d passed, %d failed" % (len((set(all_gids) | overlap_gids) - bad_gids), failed))
        ok = failed == 0
        return 0 if ok else 1
    finally:
        if load is not None:
            load.stop(timeout=5)
        coordinators.stop()
        if busi is not None:
            busi.stop()
        keep = not ok or args.keep
        if cluster is not None:
            if keep:
                cluster.stop()
            else:
                cluster.destroy()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print("workdir kept for post-mortem: %s (%s, branch-calls.jsonl%s)%s"
                  % (workdir, ", ".join(s.log_path.name for s in coordinators) or "no server log",
                     ", dtm.sqlite" if args.store == "sqlite" else "",
                     "; database server (stopped) kept in %s (its log, data/)" % cluster.dir if cluster else ""),
                  file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rounds", type=int, nargs="?", default=5, help="kill -9 / restart rounds (default 5)")
    ap.add_argument("--threads", type=int, default=4, help="client threads submitting sagas (default 4)")
    ap.add_argument("--pace", type=float, default=0.02,
                    help="each client sleeps U(0, PACE) s between submits (default 0.02)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (timing stays nondeterministic)")
    ap.add_argument("--natural-wait", type=float, default=None,
                    help="seconds to let cron finish things on its own before nudging stragglers (default 35: "
                         "10 s lease after the crash + 2 ONGOING retries 10 s apart; with long actions at least "
                         "their lease, 20 + 3 s, and two runs of them)")
    ap.add_argument("--quiesce-timeout", type=float, default=120.0,
                    help="upper bound for waiting until every transaction is final (default 120)")
    ap.add_argument("--grpc-share", type=float, default=1.0 / 3,
                    help="share of the sagas submitted over gRPC with gRPC branches (default 1/3; 0 = HTTP only; "
                         "without grpcio/grpcio-tools it warns and runs HTTP only)")
    ap.add_argument("--store", choices=("sqlite", "postgres", "mysql"), default="sqlite",
                    help="sqlite (default): one SQLite file in the temp dir; postgres: a private PostgreSQL cluster "
                         "(Tests/Interop/pg_harness.py), one schema shared by all coordinators; mysql: a private "
                         "MariaDB server (Tests/Interop/mysql_harness.py), one database shared by all coordinators")
    ap.add_argument("--coordinators", type=int, default=1,
                    help="dtm-server processes sharing the store (default 1; more than 1 needs --store postgres or mysql); "
                         "submits go to one at random, each round kills one at random")
    ap.add_argument("--long-share", type=float, default=0.05,
                    help="share of the sagas whose first action takes --long-seconds (default 0.05)")
    ap.add_argument("--long-seconds", type=float, default=11.0,
                    help="how long those actions take, s (default 11: longer than RetryInterval, the cron lease)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir even when everything passed")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("ROUNDS must be >= 1")
    if args.natural_wait is None:
        args.natural_wait = 35.0 if args.long_share <= 0 else max(35.0, 23.0 + 2 * args.long_seconds + 5.0)
    if args.coordinators < 1:
        ap.error("--coordinators must be >= 1")
    if args.coordinators > 1 and args.store == "sqlite":
        ap.error("--coordinators %d needs --store postgres or mysql (coordinators share one database; a SQLite file is one "
                 "server's own)" % args.coordinators)
    if not 0.0 <= args.grpc_share <= 1.0:
        ap.error("--grpc-share must be within 0..1")
    def _terminate(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, _terminate)  # so that `finally` stops the server and the branch service
    try:
        code = run(args)
    except (Exception, KeyboardInterrupt):
        traceback.print_exc()
        log("0 passed, 1 failed")
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
