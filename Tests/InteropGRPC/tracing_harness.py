"""Building blocks of the tracing tests (test_tracing.py, test_tracing_runtime.py; see README.md).

* W3C trace context: ``new_context()`` (a client's trace id and span id, sampled or not, optional tracestate) and
  ``parse_traceparent()``.
* Servers: ``traced_server()`` starts a private dtm-server with an environment of the test's own (and none of the
  runner's OTEL_* / TRACING_* variables), checks it says ``tracing on`` when it should, stops it afterwards;
  ``kill_and_restart()`` ``kill -9``s one and starts another on the same store.
* Doors (how a client reaches the coordinator, with the context in a header / metadata): ``HttpDoor`` (JSON API),
  ``JsonRpcDoor`` (``POST /api/json-rpc``), ``GrpcDoor`` (``dtmgimp.Dtm``). Each builds its own requests
  (``saga``, ``tcc_*``, ``workflow_*``) and knows the name and attributes of the SERVER span it should produce.
* Branches: ``HttpBranches`` (the HTTP suite's recording ``BranchServer``) and ``GrpcBranches`` (a
  ``GrpcBranchService``) give the calls the coordinator made as ``BranchHit``s (name, branch id, op, traceparent, …)
  and know the CLIENT span each call should produce.
* ``assert_lineage()``: every branch call's traceparent names an exported CLIENT span, whose parent is a
  ``dtm.round``, whose parent is the API span, whose parent is the client's span — waiting (bounded) for the spans.
* Log lines (swift-log's ``<time> <level> <label>: k=v … [Source] message``) and Prometheus samples.
"""

import base64
import contextlib
import json
import os
import re
import secrets
import time
from collections import namedtuple

import pytest
import requests

import grpc_harness as h
from conftest import dtm_stub, http_interop
from otlp_receiver import format_tree

SPAN_TIMEOUT = 10.0  # spans of a finished transaction must have arrived within this (BSP delay is 100 ms)
QUIET_SECONDS = 2.0  # how long to watch that nothing arrives (unsampled traces)
TRACING_ON_TIMEOUT = 3.0  # the start-up log must say "tracing on" within this once /api/ping answers
AMOUNT = {"amount": 30}
TRACING_ENV_PREFIXES = ("OTEL_", "TRACING_")


# ----------------------------------------------------------------------------------------------------------------
# W3C trace context
# ----------------------------------------------------------------------------------------------------------------


class TraceContext(namedtuple("TraceContext", "trace_id span_id flags tracestate")):
    """A client's current span: what goes into `traceparent` (and `tracestate`)."""

    @property
    def traceparent(self):
        return "00-%s-%s-%s" % (self.trace_id, self.span_id, self.flags)

    @property
    def sampled(self):
        return int(self.flags, 16) & 1 == 1

    def headers(self):
        out = {"traceparent": self.traceparent}
        if self.tracestate:
            out["tracestate"] = self.tracestate
        return out

    def metadata(self):
        return tuple(self.headers().items())


def new_context(sampled=True, tracestate=""):
    return TraceContext(secrets.token_hex(16), secrets.token_hex(8), "01" if sampled else "00", tracestate)


def tracestate_members(value):
    """A tracestate's list members in order (W3C allows optional whitespace around the commas)."""
    return [m.strip() for m in (value or "").split(",") if m.strip()]


TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse_traceparent(value):
    """A version-00 traceparent as a TraceContext (tracestate ""), or None if it is missing or malformed."""
    m = TRACEPARENT.match(value or "")
    return TraceContext(m.group(1), m.group(2), m.group(3), "") if m else None


# ----------------------------------------------------------------------------------------------------------------
# Servers
# ----------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def tracing_free_environ():
    """os.environ without OTEL_* / TRACING_* (DtmServer.start copies os.environ): only what a test sets counts."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(TRACING_ENV_PREFIXES):
                mp.delenv(name)
        yield


def start_server(tmp_path_factory, name, env, store_of=None):
    """A started private dtm-server with `env` (on the store of `store_of` when given)."""
    server = http_interop.DtmServer(http_interop._server_binary(), tmp_path_factory.mktemp(name), extra_env=env)
    if store_of is not None:
        server.store_env = store_of.store_env  # the same SQLite file / PostgreSQL schema / MySQL database
    try:
        with tracing_free_environ():
            server.start()
    except BaseException:
        server.stop()
        raise
    return server


def says_tracing_on(server, timeout=TRACING_ON_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        if "tracing on" in server.stderr_path.read_text(errors="replace").lower():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def require_tracing_on(server, env):
    if not says_tracing_on(server):
        pytest.fail("dtm-server (%s) did not log 'tracing on' within %.0f s of start-up although it was started "
                    "with %s: this build does not trace, or ignores that configuration\n%s"
                    % (server.binary, TRACING_ON_TIMEOUT, json.dumps(env, sort_keys=True), server.log_tail()),
                    pytrace=False)


@contextlib.contextmanager
def traced_server(tmp_path_factory, name, env, tracing=True):
    """A private dtm-server with `env`, stopped afterwards; with tracing=True it must log 'tracing on'."""
    server = start_server(tmp_path_factory, name, env)
    try:
        if tracing:
            require_tracing_on(server, env)
        yield server
    finally:
        server.stop()


def kill_and_restart(server, tmp_path_factory, name):
    """kill -9 `server`, then start a new process with the same environment on the same store."""
    server.proc.kill()
    server.proc.wait(timeout=10)
    server.stop()  # closes its log files; the process is gone already
    return start_server(tmp_path_factory, name, server.extra_env, store_of=server)


def attach_diagnostics(node, receiver, *servers):
    """Failure reports of this test get the servers' logs and the spans received (conftest's `_diagnostics`)."""
    node._diagnostics = [("dtm-server %d log" % i, s.log_tail) for i, s in enumerate(servers, 1)]
    if receiver is not None:
        node._diagnostics.append(("spans received", receiver.render))


# ----------------------------------------------------------------------------------------------------------------
# Doors: how the client reaches the coordinator
# ----------------------------------------------------------------------------------------------------------------


class _JsonBodies:
    """The JSON transaction bodies the HTTP API and JSON-RPC take (dtm-spec §4, §5)."""

    protocol_override = None

    def saga(self, gid, steps, payloads, protocol, **options):
        body = {"gid": gid, "trans_type": "saga", "steps": steps, "protocol": self.protocol_override or protocol,
                "payloads": [p.decode("ascii") if isinstance(p, bytes) else p for p in payloads]}
        body.update(options)
        return body

    def tcc_prepare(self, gid, protocol):
        return {"gid": gid, "trans_type": "tcc", "protocol": self.protocol_override or protocol}

    def tcc_branch(self, gid, branch_id, confirm, cancel, data):
        return {"gid": gid, "trans_type": "tcc", "branch_id": branch_id, "status": "prepared",
                "data": data.decode("ascii") if isinstance(data, bytes) else data, "confirm": confirm, "cancel": cancel}

    def tcc_submit(self, gid):
        return {"gid": gid, "trans_type": "tcc"}

    def msg(self, gid, steps, payloads, query_prepared, protocol, **options):
        body = self.saga(gid, steps, payloads, protocol, **options)
        body.update(trans_type="msg", query_prepared=query_prepared)
        return body

    def workflow_prepare(self, gid, name, data, resume_url, protocol):
        return {"gid": gid, "trans_type": "workflow", "protocol": protocol, "query_prepared": resume_url,
                "custom_data": json.dumps({"data": base64.b64encode(data).decode(), "name": name})}

    def workflow_step(self, gid, branch_id, result):
        return {"gid": gid, "trans_type": "workflow", "branch_id": branch_id, "op": "action", "status": "succeed",
                "data": result.decode("ascii")}

    def workflow_submit(self, gid):
        return {"gid": gid, "trans_type": "workflow",
                "req_extra": {"status": "succeed", "rollback_reason": "", "result": ""}}


class HttpDoor(_JsonBodies):
    """The JSON API, POST /api/dtmsvr/<method>, the context in the `traceparent` header."""

    label = "http"

    def __init__(self, server):
        self.server = server

    def call(self, method, body, ctx=None):
        r = requests.post("%s/%s" % (self.server.api, method), json=body, headers=ctx.headers() if ctx else {},
                          timeout=h.CALL_TIMEOUT)
        assert r.status_code == 200, "HTTP %s should answer 200, got %d %s" % (method, r.status_code, r.text)
        return r.json()

    def span_name(self, method):
        return "POST /api/dtmsvr/" + method

    def span_attributes(self, method, gid):
        return {"http.request.method": "POST", "url.path": "/api/dtmsvr/" + method,
                "http.response.status_code": 200, "dtm.gid": gid}


class JsonRpcDoor(_JsonBodies):
    """JSON-RPC (POST /api/json-rpc on the HTTP port) as DTM's Go client sends it, the context in `traceparent`.
    Its transactions have protocol json-rpc; branch URLs without `method` are still called as plain HTTP (§7.4)."""

    label = "json-rpc"
    protocol_override = "json-rpc"

    def __init__(self, server):
        self.server = server

    def call(self, method, body, ctx=None):
        r = requests.post(self.server.base_url + "/api/json-rpc", headers=ctx.headers() if ctx else {},
                          json={"jsonrpc": "2.0", "id": "no-use", "method": method, "params": body},
                          timeout=h.CALL_TIMEOUT)
        assert r.status_code == 200 and r.json().get("error") is None, \
            "JSON-RPC %s should succeed, got HTTP %d %s" % (method, r.status_code, r.text)
        return r.json()

    def span_name(self, method):
        return "POST /api/json-rpc"  # the HTTP request's span, with the RPC attributes

    def span_attributes(self, method, gid):
        return {"rpc.system": "jsonrpc", "rpc.method": method, "dtm.gid": gid}


class GrpcDoor:
    """dtmgimp.Dtm over grpcio, the context in the `traceparent` metadata."""

    label = "grpc"

    def __init__(self, stub, pb):
        self.stub = stub
        self.pb = pb

    @staticmethod
    def rpc_method(method):
        return method[0].upper() + method[1:]  # submit → Submit, registerBranch → RegisterBranch

    def call(self, method, request, ctx=None):
        return getattr(self.stub, self.rpc_method(method))(request, metadata=ctx.metadata() if ctx else None,
                                                           timeout=h.CALL_TIMEOUT)

    def span_name(self, method):
        return "dtmgimp.Dtm/" + self.rpc_method(method)

    def span_attributes(self, method, gid):
        return {"rpc.system": "grpc", "rpc.service": "dtmgimp.Dtm", "rpc.method": self.rpc_method(method),
                "rpc.grpc.status_code": 0, "dtm.gid": gid}

    def saga(self, gid, steps, payloads, protocol, **options):
        assert protocol == "grpc", "a gRPC-submitted transaction calls gRPC branches only"
        return h.saga_request(self.pb, gid, steps, payloads, **options)

    def tcc_prepare(self, gid, protocol):
        return self.pb.DtmRequest(Gid=gid, TransType="tcc", TransOptions=h.trans_options(self.pb), Steps="null")

    def tcc_branch(self, gid, branch_id, confirm, cancel, data):
        return self.pb.DtmBranchRequest(Gid=gid, TransType="tcc", BranchID=branch_id, Op="try",
                                        Data={"confirm": confirm, "cancel": cancel}, BusiPayload=data)

    def tcc_submit(self, gid):
        return self.pb.DtmRequest(Gid=gid, TransType="tcc", TransOptions=h.trans_options(self.pb))

    def workflow_prepare(self, gid, name, data, resume_url, protocol):
        custom = json.dumps({"data": base64.b64encode(data).decode(), "name": name}, separators=(",", ":"))
        return self.pb.DtmRequest(Gid=gid, TransType="workflow", CustomedData=custom, Steps="null",
                                  QueryPrepared=resume_url, TransOptions=h.trans_options(self.pb))

    def workflow_step(self, gid, branch_id, result):
        return self.pb.DtmBranchRequest(Gid=gid, TransType="workflow", BranchID=branch_id, Op="action",
                                        Data={"op": "action", "status": "succeed"}, BusiPayload=result)

    def workflow_submit(self, gid):
        return self.pb.DtmRequest(Gid=gid, TransType="workflow", TransOptions=h.trans_options(self.pb),
                                  ReqExtra={"status": "succeed", "rollback_reason": "", "result": ""})


@contextlib.contextmanager
def doors(server, pb):
    """{"http": HttpDoor, "json-rpc": JsonRpcDoor, "grpc": GrpcDoor} to `server`."""
    with dtm_stub(server, pb) as stub:
        yield {"http": HttpDoor(server), "json-rpc": JsonRpcDoor(server), "grpc": GrpcDoor(stub, pb)}


# ----------------------------------------------------------------------------------------------------------------
# Branches: the calls the coordinator made
# ----------------------------------------------------------------------------------------------------------------


class BranchHit(namedtuple("BranchHit", "name branch_id op traceparent tracestate traceparent_count span_name url")):
    """One branch call as the branch service saw it. `span_name` is the name its CLIENT span should have."""

    @property
    def context(self):
        return parse_traceparent(self.traceparent)

    def summary(self):
        return (self.name, self.branch_id, self.op)


class HttpBranches:
    """HTTP branch services: the HTTP suite's recording BranchServer (rules by gid, see Tests/Interop/README.md)."""

    protocol = "http"

    @staticmethod
    def ok():
        return http_interop.SUCCESS

    @staticmethod
    def ongoing():
        return http_interop.ongoing()  # 425

    @staticmethod
    def failure():
        return http_interop.failure("reason:insufficient balance")  # 409 ... FAILURE

    @staticmethod
    def error():
        return http_interop.Response(500, "boom")  # unknown result: retried with back-off

    resume_name = "WorkflowResume"

    def __init__(self, server):
        self.server = server
        self.port = server.port

    def url(self, name):
        return self.server.url(name)

    def resume_url(self):
        """A workflow's resume callback (query_prepared)."""
        return self.url(self.resume_name)

    def on(self, name, *answers, gid):
        self.server.on(name, *answers, gid=gid)

    def payloads(self, n):
        return [json.dumps(AMOUNT)] * n

    def hits(self, gid, count=0, timeout=h.FINAL_TIMEOUT):
        calls = self.server.wait_for_calls(gid, count, timeout) if count else self.server.calls(gid)
        return [BranchHit(c.name, c.query.get("branch_id"), c.query.get("op"), c.headers.get("traceparent"),
                          c.headers.get("tracestate"), int("traceparent" in c.headers), c.method,
                          self.server.base_url + c.path) for c in calls]

    def span_attributes(self, hit):
        return {"http.request.method": hit.span_name, "server.address": http_interop.LOOPBACK,
                "server.port": self.port}

    def assert_span_url(self, span, hit):
        full = span["attributes"].get("url.full") or ""
        assert full.startswith(hit.url), "CLIENT span of %s: url.full should be the branch URL %s (+ query), got %r" \
            % (hit.summary(), hit.url, full)


class GrpcBranches:
    """gRPC branch services: a GrpcBranchService serving busi.Busi and workflow.Workflow."""

    protocol = "grpc"

    @staticmethod
    def ok():
        return h.OK

    @staticmethod
    def ongoing():
        return h.ongoing()  # FAILED_PRECONDITION

    @staticmethod
    def failure():
        return h.aborted("reason:insufficient balance")  # ABORTED

    @staticmethod
    def error():
        return h.unavailable()  # unknown result: retried with back-off

    resume_name = "Execute"

    def __init__(self, service, pb):
        self.service = service
        self.pb = pb

    def url(self, name):
        return self.service.url(name if "." in name else "/busi.Busi/" + name)

    def resume_url(self):
        """A workflow's resume callback (query_prepared), as the Go workflow SDK registers it."""
        return self.url("/workflow.Workflow/" + self.resume_name)

    def on(self, name, *answers, gid):
        self.service.on(name, *answers, gid=gid)

    def payloads(self, n):
        return [self.pb.ReqGrpc(Amount=30, TransOutResult="SUCCESS").SerializeToString()] * n

    def hits(self, gid, count=0, timeout=h.FINAL_TIMEOUT):
        calls = self.service.wait_for_calls(count, gid, timeout) if count else self.service.calls(gid)
        return [BranchHit(c.name, c.branch_id, c.op, c.metadata.get("traceparent"), c.metadata.get("tracestate"),
                          sum(1 for k, _ in c.metadata_list if k.lower() == "traceparent"), c.method.lstrip("/"),
                          self.service.url(c.method)) for c in calls]

    def span_attributes(self, hit):
        service, method = hit.span_name.split("/", 1)
        return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}

    def assert_span_url(self, span, hit):
        pass  # rpc.* attributes name the target


def saga_steps(branches, names=("TransOut", "TransIn")):
    return [{"action": branches.url(n), "compensate": branches.url(n + "Revert")} for n in names]


@contextlib.contextmanager
def http_branches():
    server = http_interop.BranchServer().start()
    try:
        yield HttpBranches(server)
    finally:
        server.stop()


@contextlib.contextmanager
def grpc_branches(pb):
    service = h.GrpcBranchService("traced-busi", {"busi.Busi", "workflow.Workflow"}).start()
    try:
        yield GrpcBranches(service, pb)
    finally:
        service.stop()


# ----------------------------------------------------------------------------------------------------------------
# Span assertions
# ----------------------------------------------------------------------------------------------------------------


def by_id(spans):
    return {s["span_id"]: s for s in spans}


def _missing_ancestry(spans, leaf_ids, stop_at):
    """Span ids on the way from `leaf_ids` up to `stop_at` (exclusive) that have not arrived."""
    index, missing = by_id(spans), []
    for sid in leaf_ids:
        for _ in range(32):  # no real chain is that deep; guards against a parent cycle
            if not sid or sid == stop_at:
                break
            span = index.get(sid)
            if span is None:
                missing.append(sid)
                break
            sid = span["parent_span_id"]
    return missing


def wait_for_ancestry(receiver, trace_id, leaf_ids, stop_at, timeout=SPAN_TIMEOUT):
    """Wait until the spans `leaf_ids` of `trace_id` and their ancestors up to `stop_at` (the client's span id) have
    arrived; return the trace's spans by id. Fails naming what is missing."""
    ok = receiver.wait_for(lambda _: not _missing_ancestry(receiver.spans(trace_id), leaf_ids, stop_at), timeout)
    spans = receiver.spans(trace_id)
    if not ok:
        pytest.fail("spans %s of trace %s (or their parents below the client's span %s) were not exported within "
                    "%.0f s; received for this trace:\n%s"
                    % (_missing_ancestry(spans, leaf_ids, stop_at), trace_id, stop_at, timeout, format_tree(spans)))
    return by_id(spans)


def assert_attributes(span, expected, what):
    got = span["attributes"]
    wrong = {k: "expected %r, got %r" % (v, got.get(k, "<missing>")) for k, v in expected.items() if got.get(k) != v}
    assert not wrong, "%s %r has wrong attributes: %s\nspan: %s" % (what, span["name"], wrong, json.dumps(span))


def assert_kind(span, kind, what):
    assert span["kind"] == kind, "%s %r should be a %s span, got %s" % (what, span["name"], kind, span["kind"])


def assert_api_span(span, door, method, gid, parent):
    assert_kind(span, "SERVER", "API span")
    assert span["name"] == door.span_name(method), "API span of %s %s should be named %r, got %r" % (
        door.label, method, door.span_name(method), span["name"])
    assert span["parent_span_id"] == parent, "API span %r should be a child of %s, got parent %r" % (
        span["name"], parent, span["parent_span_id"])
    assert_attributes(span, door.span_attributes(method, gid), "API span")


CLIENT_STATUS = {"SUCCESS": "OK", "FAILURE": "ERROR", "ERROR": "ERROR", "ONGOING": "UNSET"}


def assert_client_span(span, hit, branches, gid, result):
    what = "CLIENT span of branch call %s" % (hit.summary(),)
    assert_kind(span, "CLIENT", what)
    assert span["name"] == hit.span_name, "%s should be named %r, got %r" % (what, hit.span_name, span["name"])
    assert_attributes(span, dict(branches.span_attributes(hit), **{
        "dtm.gid": gid, "dtm.branch_id": hit.branch_id, "dtm.op": hit.op, "dtm.result": result}), what)
    branches.assert_span_url(span, hit)
    want = CLIENT_STATUS[result]
    assert span["status_code"] == want, "%s (result %s) should have status %s, got %s %r" % (
        what, result, want, span["status_code"], span["status_message"])
    if want == "ERROR":
        assert span["status_message"], "%s has status ERROR but no description (the error text)" % what


def assert_lineage(receiver, ctx, hits, branches, gid, api_name, results=None, api_parent=None):
    """Every hit continues `ctx`'s trace: traceparent 00-<trace>-<its CLIENT span>-<flags>; CLIENT span → dtm.round →
    API span named `api_name` → `api_parent` (default: the client's span). Returns [(client, round, api), ...]."""
    api_parent = api_parent or ctx.span_id
    for hit in hits:
        got = hit.context
        assert got is not None, "branch call %s should carry a traceparent, got %r" % (hit.summary(), hit.traceparent)
        assert (got.trace_id, got.flags) == (ctx.trace_id, ctx.flags), \
            "branch call %s should carry the client's trace %s (flags %s), got %s" % (
                hit.summary(), ctx.trace_id, ctx.flags, hit.traceparent)
        assert got.span_id != ctx.span_id, "branch call %s carries the client's own span id, not a new span's: %s" % (
            hit.summary(), hit.traceparent)
    spans = wait_for_ancestry(receiver, ctx.trace_id, [hit.context.span_id for hit in hits], api_parent)
    tree = format_tree(list(spans.values()))
    out = []
    for hit, result in zip(hits, results or ["SUCCESS"] * len(hits)):
        client = spans[hit.context.span_id]
        assert_client_span(client, hit, branches, gid, result)
        rnd = spans.get(client["parent_span_id"])
        assert rnd is not None and rnd["name"] == "dtm.round", \
            "the parent of branch call %s's CLIENT span should be a dtm.round span, got %s\n%s" % (
                hit.summary(), rnd and rnd["name"], tree)
        assert_kind(rnd, "INTERNAL", "round span")
        assert_attributes(rnd, {"dtm.gid": gid}, "round span")
        api = spans.get(rnd["parent_span_id"])
        assert api is not None and api["name"] == api_name, \
            "the parent of the dtm.round span of %s should be the API span %r, got %s\n%s" % (
                hit.summary(), api_name, api and api["name"], tree)
        assert api["parent_span_id"] == api_parent, "API span %r should be a child of %s, got parent %r\n%s" % (
            api_name, api_parent, api["parent_span_id"], tree)
        out.append((client, rnd, api))
    return out


def transaction_spans(receiver, gid):
    """The spans a transaction made: every span with its dtm.gid except API calls that came without any trace context
    (the tests' own `query` polls and `resetNextCronTime` calls start traces of their own)."""
    return [s for s in receiver.spans(attrs={"dtm.gid": gid})
            if not (s["kind"] == "SERVER" and not s["parent_span_id"])]


def rounds_of(receiver, gid):
    """The dtm.round spans of a transaction, by start time."""
    return sorted(receiver.spans(name="dtm.round", attrs={"dtm.gid": gid}), key=lambda s: s["start_ns"])


def events(span, name):
    return [e["attributes"] for e in span["events"] if e["name"] == name]


def assert_round(span, reason, before, after, result, changes):
    """A dtm.round span: its attributes (None: not checked) and its dtm.status_changed events ([(from, to), ...])."""
    expected = {"dtm.round_reason": reason, "dtm.status_before": before, "dtm.status_after": after,
                "dtm.round_result": result}
    assert_attributes(span, {k: v for k, v in expected.items() if v is not None}, "round span")
    got = [(e.get("dtm.status_from"), e.get("dtm.status_to")) for e in events(span, "dtm.status_changed")]
    assert got == changes, "round span should have dtm.status_changed events %s, got %s\nspan: %s" % (
        changes, got, json.dumps(span))


# ----------------------------------------------------------------------------------------------------------------
# Transactions


def assert_final(server, gid, status):
    q = server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == status, "transaction %s should end %s: %s" % (gid, status, q)


def assert_calls(hits, expected):
    assert [x.summary() for x in hits] == expected, "branch calls (name, branch_id, op) should be %s, got %s" % (
        expected, [x.summary() for x in hits])


def hurry_cron(server, gid, done, timeout=h.FINAL_TIMEOUT):
    """Until done() is true, bring `gid`'s cron round forward (POST resetNextCronTime, at most every 2 s, no trace
    context of ours), so the test does not wait for the cron lease."""
    deadline = time.monotonic() + timeout
    last = 0.0
    while not done():
        now = time.monotonic()
        assert now < deadline, "the cron loop did not get to %s within %.0f s: %s" % (gid, timeout, server.query(gid))
        if now - last >= 2.0:
            HttpDoor(server).call("resetNextCronTime", {"gid": gid})
            last = now
        time.sleep(0.1)


# ----------------------------------------------------------------------------------------------------------------
# Log lines and metrics
# ----------------------------------------------------------------------------------------------------------------

LOG_LINE = re.compile(r"^(?P<time>\S+) (?P<level>trace|debug|info|notice|warning|error|critical) (?P<label>[^:]+):"
                      r" ?(?P<rest>.*)$")
WARNING_OR_WORSE = ("warning", "error", "critical")


class LogRecord(namedtuple("LogRecord", "level text metadata source message")):
    def get(self, key):
        return self.metadata.get(key)


def parse_log_line(line):
    """A swift-log StreamLogHandler line (`<time> <level> <label>: k=v … [Source] message`), or None. Metadata values
    may contain spaces, so only well-formed keys are read: trace_id / span_id (hex), gid (no spaces)."""
    m = LOG_LINE.match(line)
    if not m:
        return None
    rest = m.group("rest")
    src = re.match(r"^(?P<meta>.*?)\[(?P<source>[^\]\s]+)\] (?P<message>.*)$", rest)
    meta_text = src.group("meta") if src else rest
    metadata = {}
    for key, pattern in (("trace_id", r"[0-9a-f]{32}"), ("span_id", r"[0-9a-f]{16}"), ("gid", r"\S+")):
        found = re.search(r"(?:^|\s)%s=(%s)(?=\s|$)" % (key, pattern), meta_text)
        if found:
            metadata[key] = found.group(1)
    return LogRecord(m.group("level"), line, metadata, src.group("source") if src else "",
                     src.group("message") if src else rest)


def log_records(server):
    text = server.stderr_path.read_text(errors="replace")
    return [r for r in (parse_log_line(line) for line in text.splitlines()) if r is not None]


def export_warnings(server):
    """Lines at warning level or worse about exporting spans."""
    return [r for r in log_records(server) if r.level in WARNING_OR_WORSE and "export" in r.text.lower()]


def metric_samples(text, name):
    """The values of a Prometheus metric `name` (any labels) in an exposition text."""
    pattern = re.compile(r"^%s(?:\{[^}]*\})?\s+([-+0-9.eEinfNa]+)(?:\s+\d+)?$" % re.escape(name), re.M)
    return [float(v) for v in pattern.findall(text)]


def metric_total(server, name):
    """The sum of a metric's samples at GET /api/metrics, None when the metric is absent."""
    r = requests.get(server.base_url + "/api/metrics", timeout=5)
    assert r.status_code == 200, "GET /api/metrics should answer 200, got %d %s" % (r.status_code, r.text[:300])
    samples = metric_samples(r.text, name)
    return sum(samples) if samples else None
