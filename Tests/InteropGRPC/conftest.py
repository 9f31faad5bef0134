"""Fixtures for the swift-dtm gRPC interop suite (see README.md).

* ``dtm_server`` (session): the HTTP interop suite's fixture (Tests/Interop/conftest.py), reused as is: the real
  dtm-server binary with HTTP_PORT, GRPC_PORT, LISTEN_HOST=127.0.0.1, STORE_DRIVER=sqlite, STORE_FILE,
  TRANS_CRON_INTERVAL=1. It is ready when GET /api/ping answers.
* ``pb`` (session): Python stubs generated from <repo>/Protos into a temp dir.
* ``dtm_channel`` / ``dtm_grpc`` (session): a grpcio channel to 127.0.0.1:<GRPC_PORT> (must become ready within
  10 s, else every test using it errors at once) and the generated ``dtmgimp.Dtm`` stub with a default deadline.
* ``grpc_services`` (per test): a factory of GrpcBranchService instances (grpcio servers playing the business
  services), stopped at the end of the test; ``grpc_busi`` is one of them serving ``busi.Busi`` and
  ``workflow.Workflow``.
* ``otlp_receiver`` (per test): the OTLP trace receiver of Tests/Interop/otlp_receiver.py (the tracing tests).

When a test fails, its report gets the tail of the server's log and the gRPC branch calls of that test.
"""

import contextlib
import importlib.util
import json
import sys
from pathlib import Path

import grpc
import pytest

HERE = Path(__file__).resolve().parent
INTEROP_DIR = HERE.parent / "Interop"

# Reuse the HTTP suite's server fixture. Its file is also called conftest.py, so it is loaded under its own module
# name (importing it as `conftest` would collide with this file); Tests/Interop is put on sys.path for anything it
# imports from its own folder.
if str(INTEROP_DIR) not in sys.path:
    sys.path.append(str(INTEROP_DIR))
_spec = importlib.util.spec_from_file_location("swift_dtm_interop_http_conftest", INTEROP_DIR / "conftest.py")
http_interop = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = http_interop
_spec.loader.exec_module(http_interop)

dtm_server = http_interop.dtm_server  # noqa: F401  (re-exported fixture)
from otlp_receiver import otlp_receiver  # noqa: E402,F401  (fixture, Tests/Interop/otlp_receiver.py)

if str(HERE) not in sys.path:  # pytest's default "prepend" import mode does this too
    sys.path.insert(0, str(HERE))
import grpc_harness as h  # noqa: E402


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """Stubs generated from <repo>/Protos (dtmgimp.proto, busi.proto) at test time."""
    try:
        return h.generate_stubs(tmp_path_factory.mktemp("grpc-stubs"))
    except Exception as e:  # a broken proto must say so, not produce a traceback per test
        pytest.fail("could not generate Python stubs from %s: %s" % (h.PROTO_DIR, e), pytrace=False)


@pytest.fixture(scope="session")
def dtm_channel(dtm_server):
    """A channel to DTM's gRPC listener; fails (once, cached for the session) if nothing listens."""
    ch = grpc.insecure_channel(dtm_server.grpc_target, options=h.CHANNEL_OPTIONS)
    try:
        grpc.channel_ready_future(ch).result(timeout=h.GRPC_READY_TIMEOUT)
        ready = True
    except grpc.FutureTimeoutError:
        ready = False
    if not ready:
        ch.close()
        pytest.fail(
            "dtm-server's gRPC listener on %s (GRPC_PORT) did not accept a connection within %.0f s "
            "(the HTTP API on port %d is up)" % (dtm_server.grpc_target, h.GRPC_READY_TIMEOUT, dtm_server.http_port),
            pytrace=False,
        )
    try:
        yield ch
    finally:
        ch.close()


class DtmClient:
    """The generated dtmgimp.Dtm stub; every call gets a deadline (CALL_TIMEOUT) unless one is given."""

    def __init__(self, stub, channel, pb):
        self.stub = stub
        self.channel = channel
        self.pb = pb

    def __getattr__(self, method):
        rpc = getattr(self.stub, method)

        def call(request, **kwargs):
            kwargs.setdefault("timeout", h.CALL_TIMEOUT)
            return rpc(request, **kwargs)

        return call

    def raw(self, path):
        """A unary RPC on raw bytes (no serialization), for malformed / unknown-method requests."""
        mc = self.channel.unary_unary(path, request_serializer=None, response_deserializer=None)

        def call(request_bytes, **kwargs):
            kwargs.setdefault("timeout", h.CALL_TIMEOUT)
            return mc(request_bytes, **kwargs)

        return call


@pytest.fixture(scope="session")
def dtm_grpc(dtm_channel, pb):
    return DtmClient(pb.DtmStub(dtm_channel), dtm_channel, pb)


@pytest.fixture
def grpc_services(request):
    """Factory: grpc_services(label, services=None) -> a started GrpcBranchService, stopped after the test."""
    created = []
    request.node._grpc_services = created

    def make(label="busi", services=None):
        svc = h.GrpcBranchService(label, services).start()
        created.append(svc)
        return svc

    try:
        yield make
    finally:
        for svc in created:
            svc.stop()


@pytest.fixture
def grpc_busi(grpc_services):
    """DTM's test busi service (busi.Busi, plus workflow.Workflow) on its own port."""
    return grpc_services("busi", services={"busi.Busi", "workflow.Workflow"})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.failed:
        server = getattr(http_interop, "_ACTIVE_SERVER", None)
        if server is not None:
            rep.sections.append(("dtm-server log", server.log_tail()))
        # Anything else a test module registered for its report, e.g. a private server's or etcd's log:
        # item._diagnostics = [(label, callable returning text), ...]
        for label, text in getattr(item, "_diagnostics", None) or []:
            try:
                rep.sections.append((label, text()))
            except Exception as e:  # a broken diagnostic must not hide the failure
                rep.sections.append((label, "(unavailable: %r)" % (e,)))
        services = getattr(item, "_grpc_services", None) or []
        recorded = sorted((c for s in services for c in s.calls()), key=lambda c: c.time)
        if services:
            rep.sections.append((
                "gRPC branch calls during this test (%d)" % len(recorded),
                "\n".join(json.dumps(c.as_dict()) for c in recorded) or "(none)",
            ))
    return rep


@contextlib.contextmanager
def private_dtm_server(tmp_path_factory, name, env):
    """A dtm-server of a test module's own, with extra configuration `env` (e.g. short timeouts)."""
    server = http_interop.DtmServer(http_interop._server_binary(), tmp_path_factory.mktemp(name), extra_env=env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def dtm_stub(server, pb):
    """A dtmgimp.Dtm stub on a channel of its own to `server`'s gRPC listener."""
    ch = grpc.insecure_channel(server.grpc_target)
    grpc.channel_ready_future(ch).result(timeout=10)
    try:
        yield pb.DtmStub(ch)
    finally:
        ch.close()
