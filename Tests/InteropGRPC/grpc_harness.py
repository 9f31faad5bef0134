"""Building blocks of the gRPC interop suite (imported by conftest.py and the test files).

* ``generate_stubs(out_dir)``: runs ``grpc_tools.protoc`` on ``<repo>/Protos`` (dtmgimp.proto, busi.proto, which
  import the repo's google/protobuf/empty.proto) and imports the generated modules. Nothing generated is kept in
  the repository.
* ``GrpcBranchService``: a grpcio server on 127.0.0.1 (free port) that plays the gRPC business services DTM calls.
  It serves raw bytes (no deserializer, so it never needs the branch's proto), records every call (method,
  metadata, request bytes, deadline) and answers according to rules set by the test (default: OK, empty reply).
* Small helpers shared by the tests (gid, DtmRequest builders, error expectation, settling).

Every network wait here is bounded.
"""

import importlib
import json
import subprocess
import sys
import threading
import time
import uuid
from concurrent import futures
from pathlib import Path

import grpc
import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
PROTO_DIR = REPO_ROOT / "Protos"
PROTO_FILES = ("dtmgimp.proto", "busi.proto")
LOOPBACK = "127.0.0.1"

# Bounds of every wait in this suite.
GRPC_READY_TIMEOUT = 10.0  # DTM's gRPC listener must accept a connection within this after HTTP /api/ping is OK
CALL_TIMEOUT = 15.0  # deadline of every client RPC to DTM (wait_result rounds included)
FINAL_TIMEOUT = 15.0  # how long to poll the HTTP query for a final status
SETTLE_SECONDS = 1.5  # how long to keep watching after completion, to catch duplicate / late branch calls

# shortuuid's alphabet (dtm-spec §4.2)
GID_ALPHABET = set("23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")

# Options of every channel the suite opens: never route loopback traffic through a proxy from the environment,
# and allow big messages in both directions (the oversize test must reach the server).
CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


# ----------------------------------------------------------------------------------------------------------------
# Stubs generated from <repo>/Protos
# ----------------------------------------------------------------------------------------------------------------


class Stubs:
    """The generated messages and the DtmStub, under short names."""

    def __init__(self, dtmgimp_pb2, dtmgimp_pb2_grpc, busi_pb2, out_dir):
        from google.protobuf import empty_pb2

        self.out_dir = out_dir
        self.dtmgimp_pb2 = dtmgimp_pb2
        self.dtmgimp_pb2_grpc = dtmgimp_pb2_grpc
        self.busi_pb2 = busi_pb2
        self.Empty = empty_pb2.Empty
        missing = []

        def get(module, name):
            v = getattr(module, name, None)
            if v is None:
                missing.append("%s.%s" % (module.__name__, name))
            return v

        self.DtmRequest = get(dtmgimp_pb2, "DtmRequest")
        self.DtmTransOptions = get(dtmgimp_pb2, "DtmTransOptions")
        self.DtmGidReply = get(dtmgimp_pb2, "DtmGidReply")
        self.DtmBranchRequest = get(dtmgimp_pb2, "DtmBranchRequest")
        self.DtmProgressesReply = get(dtmgimp_pb2, "DtmProgressesReply")
        self.DtmTransaction = get(dtmgimp_pb2, "DtmTransaction")
        self.DtmProgress = get(dtmgimp_pb2, "DtmProgress")
        self.DtmTopicRequest = get(dtmgimp_pb2, "DtmTopicRequest")
        self.DtmStub = get(dtmgimp_pb2_grpc, "DtmStub")
        self.ReqGrpc = get(busi_pb2, "ReqGrpc")
        if missing:
            raise RuntimeError("the protos in %s do not define %s" % (PROTO_DIR, ", ".join(missing)))
        self._check_wire_contract()

    def _check_wire_contract(self):
        """The field numbers the suite (and DTM's Go clients) rely on, dtm-spec §6."""
        expected = {
            self.DtmRequest: {"Gid": 1, "TransType": 2, "TransOptions": 3, "CustomedData": 4, "BinPayloads": 5,
                              "QueryPrepared": 6, "Steps": 7, "ReqExtra": 8, "RollbackReason": 9},
            self.DtmTransOptions: {"WaitResult": 1, "TimeoutToFail": 2, "RetryInterval": 3, "BranchHeaders": 5,
                                   "RequestTimeout": 6, "RetryLimit": 7},
            self.DtmGidReply: {"Gid": 1},
            self.DtmBranchRequest: {"Gid": 1, "TransType": 2, "BranchID": 3, "Op": 4, "Data": 5, "BusiPayload": 6},
            self.DtmProgressesReply: {"Transaction": 1, "Progresses": 2},
            self.DtmTransaction: {"Gid": 1, "Status": 2, "RollbackReason": 3, "Result": 4},
            self.DtmProgress: {"Status": 1, "BinData": 2, "BranchID": 3, "Op": 4},
            self.DtmTopicRequest: {"Topic": 1, "URL": 2, "Remark": 3},
            self.ReqGrpc: {"Amount": 1, "TransOutResult": 2, "TransInResult": 3},
        }
        problems = []
        for msg, fields in expected.items():
            desc = msg.DESCRIPTOR
            for name, number in fields.items():
                f = desc.fields_by_name.get(name)
                if f is None or f.number != number:
                    problems.append("%s.%s should be field %d (got %s)"
                                    % (desc.full_name, name, number, None if f is None else f.number))
        service = self.dtmgimp_pb2.DESCRIPTOR.services_by_name.get("Dtm")
        methods = set(service.methods_by_name) if service else set()
        want = {"NewGid", "Submit", "Prepare", "Abort", "RegisterBranch", "PrepareWorkflow", "Subscribe",
                "Unsubscribe", "DeleteTopic"}
        if self.dtmgimp_pb2.DESCRIPTOR.package != "dtmgimp" or not want <= methods:
            problems.append("service dtmgimp.Dtm should have %s (got package %r, methods %s)"
                            % (sorted(want), self.dtmgimp_pb2.DESCRIPTOR.package, sorted(methods)))
        if problems:
            raise RuntimeError("Protos/ does not match dtm-spec §6:\n  " + "\n  ".join(problems))


def generate_stubs(out_dir):
    """protoc --python_out/--grpc_python_out on <repo>/Protos into out_dir, then import the modules."""
    out_dir = Path(out_dir)
    for name in PROTO_FILES + ("google/protobuf/empty.proto",):
        if not (PROTO_DIR / name).is_file():
            raise RuntimeError("missing proto file %s" % (PROTO_DIR / name))
    cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I", str(PROTO_DIR),
           "--python_out=%s" % out_dir, "--grpc_python_out=%s" % out_dir] + list(PROTO_FILES)
    # google/protobuf/empty.proto is deliberately not generated: the generated code imports
    # google.protobuf.empty_pb2 from the protobuf runtime (generating it here would shadow the runtime package).
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("grpc_tools.protoc failed (%d):\n%s%s" % (r.returncode, r.stdout, r.stderr))
    if str(out_dir) not in sys.path:
        sys.path.insert(0, str(out_dir))
    mods = []
    for name in ("dtmgimp_pb2", "dtmgimp_pb2_grpc", "busi_pb2"):
        sys.modules.pop(name, None)
        mods.append(importlib.import_module(name))
    return Stubs(*mods, out_dir=out_dir)


# ----------------------------------------------------------------------------------------------------------------
# gRPC branch (business) services
# ----------------------------------------------------------------------------------------------------------------


class GrpcCall:
    """One RPC received by a GrpcBranchService."""

    def __init__(self, service_label, method, metadata, request, time_remaining, peer):
        self.service_label = service_label
        self.method = method  # full path, e.g. "/busi.Busi/TransOut"
        self.metadata_list = [(m[0], m[1]) for m in metadata]  # in received order, duplicates kept
        self.metadata = {}
        for k, v in self.metadata_list:
            self.metadata[k.lower()] = v
        self.request = request  # raw request message bytes
        self.time_remaining = time_remaining  # seconds left of the caller's deadline, None = no deadline
        self.peer = peer
        self.time = time.monotonic()

    @property
    def name(self):
        """The method name, e.g. 'TransOut'."""
        return self.method.rsplit("/", 1)[-1]

    @property
    def service(self):
        """The service, e.g. 'busi.Busi'."""
        parts = self.method.split("/")
        return parts[1] if len(parts) > 2 else ""

    @property
    def gid(self):
        return self.metadata.get("dtm-gid")

    @property
    def op(self):
        return self.metadata.get("dtm-op")

    @property
    def branch_id(self):
        return self.metadata.get("dtm-branch_id")

    @property
    def trans_type(self):
        return self.metadata.get("dtm-trans_type")

    def summary(self):
        return (self.method, self.branch_id, self.op)

    def as_dict(self):
        return {
            "service": self.service_label,
            "method": self.method,
            "metadata": self.metadata_list,
            "request_hex": self.request.hex(),
            "time_remaining": self.time_remaining,
        }

    def __repr__(self):
        return "GrpcCall(%s %s md=%s req=%s)" % (self.service_label, self.method, self.metadata_list,
                                                  self.request.hex())


class GrpcReply:
    """What a branch service answers: a status code and message (and reply bytes when OK), optionally late."""

    def __init__(self, code=grpc.StatusCode.OK, message="", payload=b"", delay=0.0):
        self.code = code
        self.message = message
        self.payload = payload
        self.delay = delay

    def __repr__(self):
        return "GrpcReply(%s, %r)" % (self.code, self.message)


OK = GrpcReply()


def aborted(message="FAILURE"):
    """Business failure as DTM's busi answers it (dtm-spec §7.3: ABORTED → FAILURE)."""
    return GrpcReply(grpc.StatusCode.ABORTED, message)


def ongoing(message="ONGOING"):
    """Not finished yet (FAILED_PRECONDITION → ONGOING)."""
    return GrpcReply(grpc.StatusCode.FAILED_PRECONDITION, message)


def unavailable(message="service unavailable"):
    """Any other status is 'unknown result, retry with back-off'."""
    return GrpcReply(grpc.StatusCode.UNAVAILABLE, message)


class _Rule:
    def __init__(self, name, replies, gid, op):
        self.name = name
        self.gid = gid
        self.op = op
        self.replies = [GrpcReply(*r) if isinstance(r, tuple) else r for r in replies]
        if not self.replies:
            raise ValueError("a rule needs at least one reply")
        self.used = 0

    def matches(self, call):
        return ((self.name == call.method or self.name == call.name)
                and (self.gid is None or call.gid == self.gid)
                and (self.op is None or call.op == self.op))

    def next_reply(self, call):
        r = self.replies[min(self.used, len(self.replies) - 1)]  # in order; the last one repeats
        self.used += 1
        if callable(r):
            r = r(call)
        return r


class _AnyMethodHandler(grpc.GenericRpcHandler):
    """Serves every method path as a unary-unary RPC on raw bytes."""

    def __init__(self, owner):
        self.owner = owner

    def service(self, handler_call_details):
        method = handler_call_details.method
        owner = self.owner

        def handle(request, context):
            return owner._handle(method, request, context)

        return grpc.unary_unary_rpc_method_handler(handle, request_deserializer=None, response_serializer=None)


class GrpcBranchService:
    """A grpcio server on 127.0.0.1:<free port> that records calls and answers by rules.

    ``services``: the gRPC service names it implements (e.g. {"busi.Busi"}); a call to any other service is
    recorded and answered UNIMPLEMENTED, as a real server would. None = implement every service.
    """

    def __init__(self, label="busi", services=None, max_workers=16, tls=None):
        """``tls``: (private key PEM bytes, certificate chain PEM bytes) to serve over TLS (``grpcs://`` URLs)."""
        self.label = label
        self.services = set(services) if services is not None else None
        self._lock = threading.Lock()
        self._calls = []
        self._rules = []
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc-%s" % label),
            handlers=[_AnyMethodHandler(self)],
            options=[("grpc.so_reuseport", 0)],
        )
        if tls is None:
            self.port = self.server.add_insecure_port("%s:0" % LOOPBACK)
        else:
            self.port = self.server.add_secure_port("%s:0" % LOOPBACK, grpc.ssl_server_credentials([tls]))
        if not self.port:
            raise RuntimeError("could not bind a gRPC branch service on %s" % LOOPBACK)
        self.target = "%s:%d" % (LOOPBACK, self.port)
        self._started = False

    def start(self):
        self.server.start()
        self._started = True
        return self

    def stop(self):
        if self._started:
            self._started = False
            self.server.stop(grace=None).wait(timeout=5)

    def url(self, method):
        """The DTM branch URL of `method` ('/busi.Busi/TransOut' or 'busi.Busi/TransOut'): host:port/pkg.Svc/M."""
        return "%s/%s" % (self.target, method.lstrip("/"))

    # -- rules & records -----------------------------------------------------------------------------------

    def on(self, name, *replies, gid=None, op=None):
        """Answer calls of `name` (a full method path or just the method name) with `replies` in order (the last
        repeats); optionally only for one gid (metadata dtm-gid) / op (dtm-op). Later rules win.
        Replies: GrpcReply, (code, message) tuples, or callables taking the GrpcCall."""
        with self._lock:
            self._rules.insert(0, _Rule(name, replies, gid, op))

    def calls(self, gid=None):
        with self._lock:
            return [c for c in self._calls if gid is None or c.gid == gid]

    def wait_for_calls(self, count, gid=None, timeout=10.0):
        """Wait (bounded) until at least `count` calls (for `gid`) were received; returns what was received."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.calls(gid)
            if len(got) >= count or time.monotonic() >= deadline:
                return got
            time.sleep(0.02)

    def _handle(self, method, request, context):
        call = GrpcCall(self.label, method, context.invocation_metadata(), bytes(request),
                        context.time_remaining(), context.peer())
        with self._lock:
            self._calls.append(call)
            if self.services is not None and call.service not in self.services:
                reply = GrpcReply(grpc.StatusCode.UNIMPLEMENTED, "unknown service %s" % call.service)
            else:
                rule = next((r for r in self._rules if r.matches(call)), None)
                reply = rule.next_reply(call) if rule is not None else OK
        if reply.delay:
            time.sleep(reply.delay)
        if reply.code != grpc.StatusCode.OK:
            context.set_code(reply.code)
            context.set_details(reply.message)
            return b""
        return reply.payload


# ----------------------------------------------------------------------------------------------------------------
# Helpers for tests
# ----------------------------------------------------------------------------------------------------------------


def new_gid(tag):
    return "py-grpc-%s-%s" % (tag, uuid.uuid4().hex[:16])


def steps_json(steps):
    """The `Steps` string as Go's dtmgrpc sends it: compact JSON of [{"action","compensate"}, ...]."""
    return json.dumps(steps, separators=(",", ":"))


def trans_options(pb, wait_result=False, timeout_to_fail=0, retry_interval=0, branch_headers=None,
                  request_timeout=0, retry_limit=0):
    return pb.DtmTransOptions(
        WaitResult=wait_result, TimeoutToFail=timeout_to_fail, RetryInterval=retry_interval,
        BranchHeaders=branch_headers or {}, RequestTimeout=request_timeout, RetryLimit=retry_limit)


def saga_request(pb, gid, steps, payloads, **options):
    """A saga DtmRequest as Go's dtmgrpc builds it (TransOptions always present)."""
    return pb.DtmRequest(Gid=gid, TransType="saga", Steps=steps_json(steps), BinPayloads=list(payloads),
                         TransOptions=trans_options(pb, **options))


def expect_rpc_error(fn, *args, codes, contains=None, **kwargs):
    """Call fn; it must raise grpc.RpcError with a code in `codes` (and details containing `contains`)."""
    if isinstance(codes, grpc.StatusCode):
        codes = (codes,)
    kwargs.setdefault("timeout", CALL_TIMEOUT)
    try:
        result = fn(*args, **kwargs)
    except grpc.RpcError as e:
        code, details = e.code(), e.details() or ""
        assert code in codes, "expected %s, got %s %r" % ("/".join(c.name for c in codes), code, details)
        if contains is not None:
            for part in ([contains] if isinstance(contains, str) else contains):
                assert part in details, "expected %r in the status message, got %r" % (part, details)
        return e
    pytest.fail("expected a gRPC error %s, but the call succeeded with %r"
                % ("/".join(c.name for c in codes), result))


def settle():
    time.sleep(SETTLE_SECONDS)


def summaries(calls):
    return [c.summary() for c in calls]


def branch_rows(query_answer):
    return [(b.get("branch_id"), b.get("op"), b.get("status")) for b in query_answer["branches"]]


def assert_dtm_metadata(call, gid, trans_type, branch_id, op, extra=None, max_deadline=None):
    """The metadata DTM sends with every branch call (dtm-spec §7.3)."""
    md = call.metadata
    assert md.get("dtm-gid") == gid, call
    assert md.get("dtm-trans_type") == trans_type, call
    assert md.get("dtm-branch_id") == branch_id, call
    assert md.get("dtm-op") == op, call
    assert "dtm-dtm" in md, "metadata dtm-dtm missing: %r" % (call,)
    for key in ("dtm-gid", "dtm-trans_type", "dtm-branch_id", "dtm-op", "dtm-dtm"):
        n = sum(1 for k, _ in call.metadata_list if k.lower() == key)
        assert n == 1, "metadata %s sent %d times: %r" % (key, n, call)
    for k, v in (extra or {}).items():
        assert md.get(k.lower()) == v, "branch header %s=%r missing: %r" % (k.lower(), v, call)
    if max_deadline is not None:
        # DTM sets the deadline (grpc-timeout) to the request timeout
        assert call.time_remaining is not None, "no deadline on the branch call: %r" % (call,)
        assert 0 < call.time_remaining <= max_deadline + 0.5, call.time_remaining


def busi_saga_steps(svc):
    """DTM's genSagaGrpc: TransOut/TransOutRevert then TransIn/TransInRevert on busi.Busi (dtm-spec §16.1)."""
    return [
        {"action": svc.url("/busi.Busi/TransOut"), "compensate": svc.url("/busi.Busi/TransOutRevert")},
        {"action": svc.url("/busi.Busi/TransIn"), "compensate": svc.url("/busi.Busi/TransInRevert")},
    ]


# The calls of busi_saga_steps when TransIn fails: the failed step is compensated too, then compensation runs in
# reverse (dtm-spec §8.2, §17.19); as `summaries` gives them.
FAILED_BUSI_SAGA_CALLS = [
    ("/busi.Busi/TransOut", "01", "action"),
    ("/busi.Busi/TransIn", "02", "action"),
    ("/busi.Busi/TransInRevert", "02", "compensate"),
    ("/busi.Busi/TransOutRevert", "01", "compensate"),
]


def busi_payloads(pb, amount=30):
    """One serialized busi.ReqGrpc per step; different bytes per step so a mix-up is visible."""
    return [
        pb.ReqGrpc(Amount=amount, TransOutResult="SUCCESS").SerializeToString(),
        pb.ReqGrpc(Amount=amount, TransInResult="SUCCESS").SerializeToString(),
    ]
