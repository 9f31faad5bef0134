"""Self-test of the OTLP receiver (Tests/Interop/otlp_receiver.py) and of the tracing harness's parsers: hand-built
ExportTraceServiceRequests exported over OTLP/HTTP (plain and gzip, keep-alive) and over OTLP/gRPC (the
TraceServiceStub of opentelemetry-proto) are decoded into the span dicts the tracing tests read. No dtm-server is
needed: `pytest Tests/InteropGRPC -k selftest`.
"""

import gzip
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

import otlp_receiver as otlp
import tracing_harness as th

TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
SERVER_SPAN = "00f067aa0ba902b7"
ROUND_SPAN = "53995c3f42cd8ad8"


def kv(key, value):
    v = common_pb2.AnyValue()
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int):
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    elif isinstance(value, bytes):
        v.bytes_value = value
    elif isinstance(value, list):
        v.array_value.values.extend(kv("", x).value for x in value)
    elif isinstance(value, dict):
        v.kvlist_value.values.extend(kv(k, x) for k, x in value.items())
    else:
        v.string_value = value
    return common_pb2.KeyValue(key=key, value=v)


def sample_request():
    """A SERVER span (child of a client's span) with an INTERNAL child that has an event and an error status."""
    server = trace_pb2.Span(
        trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex(SERVER_SPAN), parent_span_id=bytes.fromhex(CLIENT_SPAN),
        name="POST /api/dtmsvr/submit", kind=trace_pb2.Span.SPAN_KIND_SERVER, trace_state="interop=1",
        start_time_unix_nano=1_000_000_000, end_time_unix_nano=1_005_000_000,
        attributes=[kv("http.request.method", "POST"), kv("http.response.status_code", 200), kv("dtm.gid", "g1"),
                    kv("flag", True), kv("ratio", 0.5), kv("list", ["a", 1]), kv("map", {"k": "v"}),
                    kv("raw", b"\x01\xff")],
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_OK))
    rnd = trace_pb2.Span(
        trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex(ROUND_SPAN), parent_span_id=bytes.fromhex(SERVER_SPAN),
        name="dtm.round", kind=trace_pb2.Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=1_001_000_000, end_time_unix_nano=1_004_000_000,
        events=[trace_pb2.Span.Event(name="dtm.back_off", time_unix_nano=1_003_000_000,
                                     attributes=[kv("dtm.next_cron_interval", 2)])],
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="boom"))
    request = trace_service_pb2.ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", "dtm"), kv("deployment.environment", "selftest")])
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "swift-dtm", "0.1.0"
    ss.spans.extend([server, rnd])
    return request


def post(conn, path, body, content_type="application/x-protobuf", encoding=None):
    headers = {"Content-Type": content_type, "x-interop-token": "t0k3n"}
    if encoding:
        headers["Content-Encoding"] = encoding
    conn.request("POST", path, body, headers)
    r = conn.getresponse()
    return r.status, r.getheader("Content-Type"), r.read()


def export(receiver, transport, request):
    if transport == "grpc":
        with grpc.insecure_channel("%s:%d" % (otlp.LOOPBACK, receiver.grpc_port)) as ch:
            reply = trace_service_pb2_grpc.TraceServiceStub(ch).Export(
                request, metadata=(("x-interop-token", "t0k3n"),), timeout=5)
        assert isinstance(reply, trace_service_pb2.ExportTraceServiceResponse)
        return
    body = request.SerializeToString()
    encoding = None
    if transport == "http-gzip":
        body, encoding = gzip.compress(body), "gzip"
    conn = http.client.HTTPConnection(otlp.LOOPBACK, receiver.http_port, timeout=5)
    try:
        status, content_type, reply = post(conn, otlp.TRACES_PATH, body, encoding=encoding)
    finally:
        conn.close()
    assert (status, content_type) == (200, "application/x-protobuf"), "expected 200 protobuf, got %s %s %r" % (
        status, content_type, reply)
    trace_service_pb2.ExportTraceServiceResponse.FromString(reply)  # an (empty) ExportTraceServiceResponse


@pytest.mark.parametrize("transport", ["http", "http-gzip", "grpc"])
def test_selftest_receiver_decodes_an_export(otlp_receiver, transport):
    export(otlp_receiver, transport, sample_request())
    spans = otlp_receiver.wait_for_spans(2, timeout=5)
    assert [s["name"] for s in spans] == ["POST /api/dtmsvr/submit", "dtm.round"], spans
    server, rnd = spans
    protocol = otlp.GRPC if transport == "grpc" else otlp.HTTP_PROTOBUF
    assert {k: server[k] for k in ("trace_id", "span_id", "parent_span_id", "kind", "status_code", "trace_state",
                                   "start_ns", "end_ns", "protocol")} == {
        "trace_id": TRACE, "span_id": SERVER_SPAN, "parent_span_id": CLIENT_SPAN, "kind": "SERVER",
        "status_code": "OK", "trace_state": "interop=1", "start_ns": 1_000_000_000, "end_ns": 1_005_000_000,
        "protocol": protocol}
    assert server["attributes"] == {"http.request.method": "POST", "http.response.status_code": 200, "dtm.gid": "g1",
                                    "flag": True, "ratio": 0.5, "list": ["a", 1], "map": {"k": "v"}, "raw": "01ff"}
    assert server["resource"] == {"service.name": "dtm", "deployment.environment": "selftest"}
    assert server["scope"] == {"name": "swift-dtm", "version": "0.1.0"}
    assert (rnd["kind"], rnd["parent_span_id"], rnd["status_code"], rnd["status_message"]) == (
        "INTERNAL", SERVER_SPAN, "ERROR", "boom")
    assert th.events(rnd, "dtm.back_off") == [{"dtm.next_cron_interval": 2}]
    (record,) = otlp_receiver.exports()
    assert (record["protocol"], record["spans"], record["headers"].get("x-interop-token")) == (protocol, 2, "t0k3n")
    assert otlp_receiver.spans(TRACE, kind="INTERNAL", attrs={}) == [rnd]
    assert otlp_receiver.span(ROUND_SPAN) == rnd
    assert otlp_receiver.spans(attrs={"dtm.gid": "g1"}) == [server]


def test_selftest_receiver_keeps_alive_and_refuses_what_is_not_otlp_traces(otlp_receiver):
    body = sample_request().SerializeToString()
    conn = http.client.HTTPConnection(otlp.LOOPBACK, otlp_receiver.http_port, timeout=5)
    try:
        answers = [post(conn, otlp.TRACES_PATH, body)[0], post(conn, otlp.TRACES_PATH, body)[0],  # one connection
                   post(conn, otlp.TRACES_PATH, b"{}", content_type="application/json")[0],
                   post(conn, "/v1/metrics", body)[0],
                   post(conn, otlp.TRACES_PATH, b"\xff\xff\xff")[0]]
        conn.request("GET", otlp.TRACES_PATH)
        answers.append(conn.getresponse().status)
    finally:
        conn.close()
    assert answers == [200, 200, 415, 404, 400, 405], answers
    assert len(otlp_receiver.spans()) == 4 and len(otlp_receiver.exports()) == 2
    reasons = [r["reason"] for r in otlp_receiver.rejected()]
    assert reasons[:2] == ["content type 'application/json'", "unknown path"], reasons
    assert reasons[2].startswith("undecodable"), reasons

    with grpc.insecure_channel("%s:%d" % (otlp.LOOPBACK, otlp_receiver.grpc_port)) as ch:
        metrics = ch.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                                 request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            metrics(b"", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED, info.value
    assert otlp_receiver.rejected()[-1]["path"] == "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


def test_selftest_receiver_waits_dumps_and_frees_its_ports(tmp_path):
    receiver = otlp.OtlpReceiver().start()
    try:
        t0 = time.monotonic()
        assert receiver.wait_for(lambda spans: spans, timeout=0.3) is None
        assert 0.3 <= time.monotonic() - t0 < 2
        threading.Timer(0.2, export, (receiver, "http", sample_request())).start()
        assert len(receiver.wait_for(lambda spans: spans if len(spans) == 2 else None, timeout=5)) == 2
        path = tmp_path / "spans.jsonl"
        assert receiver.dump(path) == 2
        assert otlp.load(path) == receiver.spans()
        tree = receiver.render(TRACE).splitlines()
        assert tree[0] == "trace " + TRACE and tree[1].startswith("  POST /api/dtmsvr/submit [SERVER]"), tree
        assert tree[2].startswith("    dtm.round [INTERNAL]"), tree
        env = receiver.server_env(otlp.GRPC, OTEL_SERVICE_NAME="x")
        assert env == {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                       "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "x"}
        assert receiver.server_env()["OTEL_EXPORTER_OTLP_ENDPOINT"] == receiver.http_endpoint
        kept_alive = http.client.HTTPConnection(otlp.LOOPBACK, receiver.http_port, timeout=5)
        assert post(kept_alive, otlp.TRACES_PATH, sample_request().SerializeToString())[0] == 200
    finally:
        receiver.stop()
    try:  # the exporter's keep-alive connection is closed by stop(), not left to a handler thread
        assert kept_alive.sock.recv(1) == b"", "stop() should close the open keep-alive connections"
    except ConnectionResetError:
        pass
    kept_alive.close()
    for port in (receiver.http_port, receiver.grpc_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((otlp.LOOPBACK, port), timeout=2).close()


def test_selftest_receiver_runs_on_its_own_and_streams_spans(tmp_path):
    out = tmp_path / "stream.jsonl"
    proc = subprocess.Popen([sys.executable, otlp.__file__, "--out", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        endpoints = json.loads(proc.stdout.readline())
        port = int(endpoints["http"].rsplit(":", 1)[1])
        conn = http.client.HTTPConnection(otlp.LOOPBACK, port, timeout=5)
        assert post(conn, otlp.TRACES_PATH, sample_request().SerializeToString())[0] == 200
        conn.close()
        assert [s["name"] for s in otlp.load(out)] == ["POST /api/dtmsvr/submit", "dtm.round"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        proc.stdout.close()
    assert proc.returncode == 0


def test_selftest_tracing_harness_parsers():
    ctx = th.new_context(tracestate="a=1")
    assert th.parse_traceparent(ctx.traceparent) == ctx._replace(tracestate="")
    assert ctx.headers() == {"traceparent": ctx.traceparent, "tracestate": "a=1"}
    assert th.new_context(sampled=False).traceparent.endswith("-00")
    for bad in (None, "", "01-%s-%s-01" % (TRACE, CLIENT_SPAN), "00-%s-%s-1" % (TRACE, CLIENT_SPAN)):
        assert th.parse_traceparent(bad) is None, bad

    # Lines as swift-log's StreamLogHandler writes them (dtm-server's stderr).
    line = ("2026-12-06T05:49:08+0000 warning swift-dtm: branch_id=02 error=http://127.0.0.1:1/a: Connection "
            "refused (errno: 111)) gid=py-1 op=action span_id=%s trace_id=%s trans_type=saga url=http://127.0.0.1:1/a "
            "[DTMCore] branch error, will retry" % (ROUND_SPAN, TRACE))
    rec = th.parse_log_line(line)
    assert (rec.level, rec.source, rec.message) == ("warning", "DTMCore", "branch error, will retry")
    assert rec.metadata == {"trace_id": TRACE, "span_id": ROUND_SPAN, "gid": "py-1"}
    plain = th.parse_log_line("2026-12-06T05:49:06+0000 info swift-dtm: [DTMServer] swift-dtm stopped")
    assert (plain.level, plain.source, plain.message, plain.metadata) == ("info", "DTMServer", "swift-dtm stopped", {})
    assert th.parse_log_line("Backtrace: not a log line") is None

    text = ("# HELP dtm_trace_spans_dropped_total x\n# TYPE dtm_trace_spans_dropped_total counter\n"
            "dtm_trace_spans_dropped_total 7\ndtm_trace_spans_dropped_total_other 1\n"
            'dtm_branch_process_total{trans_type="saga",status="ok"} 2\n'
            'dtm_branch_process_total{trans_type="tcc",status="ok"} 3.0\n')
    assert th.metric_samples(text, "dtm_trace_spans_dropped_total") == [7.0]
    assert th.metric_samples(text, "dtm_branch_process_total") == [2.0, 3.0]
    assert th.metric_samples(text, "missing") == []


def make_span(ctx_trace, span_id, parent, name, kind, attrs, status=trace_pb2.Status.STATUS_CODE_UNSET):
    return trace_pb2.Span(trace_id=bytes.fromhex(ctx_trace), span_id=bytes.fromhex(span_id),
                          parent_span_id=bytes.fromhex(parent), name=name, kind=kind,
                          start_time_unix_nano=1, end_time_unix_nano=2, status=trace_pb2.Status(code=status),
                          attributes=[kv(k, v) for k, v in attrs.items()])


def test_selftest_assert_lineage_walks_client_round_api_up_to_the_client(otlp_receiver):
    ctx, gid, url = th.new_context(), "g1", "http://127.0.0.1:1234/api/busi/TransOut"
    api_id, round_id, client_id = "a1" * 8, "b2" * 8, "c3" * 8
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.extend([
        make_span(ctx.trace_id, api_id, ctx.span_id, "POST /api/dtmsvr/submit", trace_pb2.Span.SPAN_KIND_SERVER,
                  {"http.request.method": "POST", "url.path": "/api/dtmsvr/submit", "http.response.status_code": 200,
                   "dtm.gid": gid}),
        make_span(ctx.trace_id, round_id, api_id, "dtm.round", trace_pb2.Span.SPAN_KIND_INTERNAL, {"dtm.gid": gid}),
        make_span(ctx.trace_id, client_id, round_id, "POST", trace_pb2.Span.SPAN_KIND_CLIENT,
                  {"dtm.gid": gid, "dtm.branch_id": "01", "dtm.op": "action", "dtm.result": "SUCCESS",
                   "http.request.method": "POST", "server.address": "127.0.0.1", "server.port": 1234,
                   "url.full": url + "?gid=g1"}, trace_pb2.Status.STATUS_CODE_OK),
    ])
    export(otlp_receiver, "http", request)
    hit = th.BranchHit("TransOut", "01", "action", "00-%s-%s-01" % (ctx.trace_id, client_id), None, 1, "POST", url)
    branches = th.HttpBranches(type("FakeBranchServer", (), {"port": 1234})())

    ((client, rnd, api),) = th.assert_lineage(otlp_receiver, ctx, [hit], branches, gid, "POST /api/dtmsvr/submit")
    assert (client["span_id"], rnd["span_id"], api["span_id"]) == (client_id, round_id, api_id)
    th.assert_api_span(api, th.HttpDoor(None), "submit", gid, ctx.span_id)
    with pytest.raises(AssertionError, match="dtm.result"):
        th.assert_lineage(otlp_receiver, ctx, [hit], branches, gid, "POST /api/dtmsvr/submit", results=["FAILURE"])
    with pytest.raises(AssertionError, match="the client's trace"):
        th.assert_lineage(otlp_receiver, th.new_context(), [hit], branches, gid, "POST /api/dtmsvr/submit")
    with pytest.raises(pytest.fail.Exception, match="ffffffffffffffff"):
        th.wait_for_ancestry(otlp_receiver, ctx.trace_id, ["f" * 16], ctx.span_id, timeout=0.2)
