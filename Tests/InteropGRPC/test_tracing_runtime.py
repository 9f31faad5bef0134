"""OpenTelemetry tracing at run time: a transaction keeps its trace across `kill -9` and a restart (the context is
stored with it); unsampled traces export nothing yet still reach the branches; a collector that is down neither
slows nor changes transactions nor holds up SIGTERM, and is reported at most once or twice; log lines written in a
round carry its trace id; a full export queue drops spans and counts them (dtm_trace_spans_dropped_total); each way
of configuring the endpoint turns tracing on and nothing does when no endpoint is set.

Each test starts the private dtm-server(s) it needs (module-scoped one for the tests that only read), all exporting
to one receiver (Tests/Interop/otlp_receiver.py) over OTLP/HTTP unless the test is about the protocol; every test
uses its own trace and gid. The span tree itself is checked in test_tracing.py.
"""

import contextlib
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import grpc_harness as h
import tracing_harness as th
from conftest import http_interop
from otlp_receiver import GRPC, HTTP_PROTOBUF, PROTOCOLS, OtlpReceiver

RETRY_AFTER_ONGOING = 3  # s: the saga's retry_interval; kill -9 and restart happen well within it
SUBMIT_BUDGET = 2.0  # s a trivial wait_result saga may take, tracing or not
WATCH_SECONDS = 5.0  # how long the collector-down test watches the log
SAGAS_WHILE_DOWN = 5
SHUTDOWN_BUDGET = 3.0  # s from SIGTERM to exit, even with spans for a collector that is down
BURST = 24  # sagas submitted at once against an export queue of one span
CUSTOM_PATH = "/custom/v1/traces"  # a full traces URL that is not <endpoint>/v1/traces


@pytest.fixture(scope="module")
def receiver():
    with OtlpReceiver() as r:
        r.paths.add(CUSTOM_PATH)
        yield r


@pytest.fixture(scope="module")
def busi():
    with th.http_branches() as b:
        yield b


@pytest.fixture(scope="module")
def server(receiver, tmp_path_factory):
    """A dtm-server exporting to `receiver` over OTLP/HTTP, for the tests that need nothing special."""
    with th.traced_server(tmp_path_factory, "traced-runtime", receiver.server_env(HTTP_PROTOBUF)) as s:
        yield s


def submit_saga(server, busi, ctx, gid, **options):
    door = th.HttpDoor(server)
    door.call("submit", door.saga(gid, th.saga_steps(busi), busi.payloads(2), busi.protocol, **options), ctx)
    return door


# ----------------------------------------------------------------------------------------------------------------


def test_a_transaction_keeps_its_trace_across_kill_9_and_restart(request, receiver, busi, tmp_path_factory):
    env = receiver.server_env(HTTP_PROTOBUF, OTEL_SERVICE_NAME="dtm-crash")
    with contextlib.ExitStack() as stack:
        first = th.start_server(tmp_path_factory, "trace-crash-1", env)
        stack.callback(first.stop)
        th.attach_diagnostics(request.node, receiver, first)
        th.require_tracing_on(first, env)
        ctx, gid = th.new_context(), h.new_gid("trace-crash")
        busi.on("TransIn", busi.ongoing(), busi.ok(), gid=gid)
        door = submit_saga(first, busi, ctx, gid, retry_interval=RETRY_AFTER_ONGOING)

        # The first round (TransOut, then TransIn ONGOING) must be exported before the process dies.
        assert receiver.wait_for(lambda _: th.rounds_of(receiver, gid), th.SPAN_TIMEOUT), \
            "the first round's span should be exported\n%s" % receiver.render(ctx.trace_id)
        assert len(busi.hits(gid)) == 2, "the cron loop must not have retried before the kill: %s" % busi.hits(gid)
        second = th.kill_and_restart(first, tmp_path_factory, "trace-crash-2")
        stack.callback(second.stop)
        th.attach_diagnostics(request.node, receiver, first, second)
        th.require_tracing_on(second, env)

        th.assert_final(second, gid, "succeed")
        hits = busi.hits(gid, 3)
        th.assert_calls(hits, [("TransOut", "01", "action"), ("TransIn", "02", "action"), ("TransIn", "02", "action")])
        lineage = th.assert_lineage(receiver, ctx, hits, busi, gid, door.span_name("submit"),
                                    results=["SUCCESS", "ONGOING", "SUCCESS"])
        rounds = th.rounds_of(receiver, gid)
        assert len(rounds) >= 2, "expected the submit's round and the cron loop's round after the restart, got %d" \
            "\n%s" % (len(rounds), receiver.render(ctx.trace_id))
        th.assert_round(rounds[0], "submit", "submitted", "submitted", "ongoing", [])
        th.assert_round(rounds[-1], None, "submitted", "succeed", "ok", [("submitted", "succeed")])
        assert rounds[-1]["attributes"].get("dtm.round_reason") in ("cron", "retry"), \
            "the round after the restart was run by the cron loop: reason cron/retry expected, got %s" % (
                rounds[-1]["attributes"],)
        assert lineage[2][1]["span_id"] == rounds[-1]["span_id"], "the retried call should be in the last round"
        assert lineage[2][2]["span_id"] == lineage[0][2]["span_id"], \
            "the restarted process's round should be a child of the first process's submit span"
        mine = th.transaction_spans(receiver, gid)
        assert {s["trace_id"] for s in mine} == {ctx.trace_id}, "all spans of %s, from both processes, should be in " \
            "the client's trace %s: got traces %s" % (gid, ctx.trace_id, sorted({s["trace_id"] for s in mine}))
        names = {s["resource"].get("service.name") for s in mine}
        assert names == {"dtm-crash"}, "OTEL_SERVICE_NAME should name the service of every span, got %s" % names


# Only the client's flags 00 under the default parentbased_always_on: with OTEL_TRACES_SAMPLER=always_off swift-otel's
# fast path gives a span no context at all, so nothing is propagated then (README, Tracing).
def test_an_unsampled_trace_exports_nothing_yet_the_branches_get_its_context(request, receiver, busi, server):
    ctx = th.new_context(sampled=False)
    th.attach_diagnostics(request.node, receiver, server)
    gid = h.new_gid("trace-unsampled")
    submit_saga(server, busi, ctx, gid, wait_result=True)
    th.assert_final(server, gid, "succeed")
    for hit in busi.hits(gid, 2):
        got = hit.context
        assert got is not None and (got.trace_id, got.flags) == (ctx.trace_id, "00"), \
            "branch call %s should carry the trace %s with flags 00, got %r" % (hit.summary(), ctx.trace_id, hit.traceparent)
    # Control: a sampled saga on the same server is exported, so the exporter works and has sent what the unsampled
    # one would have produced before it.
    control, control_gid = th.new_context(), h.new_gid("trace-sampled")
    door = submit_saga(server, busi, control, control_gid, wait_result=True)
    th.assert_lineage(receiver, control, busi.hits(control_gid, 2), busi, control_gid, door.span_name("submit"))
    time.sleep(th.QUIET_SECONDS)
    leaked = receiver.spans(ctx.trace_id) + th.transaction_spans(receiver, gid)
    assert not leaked, "nothing of the unsampled trace %s should be exported, got:\n%s" % (
        ctx.trace_id, receiver.render(ctx.trace_id))


@contextlib.contextmanager
def collector_down_server(tmp_path_factory, protocol):
    """A traced dtm-server whose collector endpoint is a loopback port nothing listens on."""
    closed = "http://%s:%d" % (http_interop.LOOPBACK, http_interop.free_port())
    # A short export timeout, so that failed exports (and their warning) come within the watch.
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": closed, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
           "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_EXPORTER_OTLP_TIMEOUT": "1000"}
    with th.traced_server(tmp_path_factory, "trace-collector-down", env) as server:
        yield server


def timed_saga(server, busi):
    """A wait_result saga with a client trace; returns (seconds the submit took, gid, context)."""
    ctx, gid = th.new_context(), h.new_gid("trace-down")
    t0 = time.monotonic()
    submit_saga(server, busi, ctx, gid, wait_result=True)
    return time.monotonic() - t0, gid, ctx


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_with_the_collector_down_transactions_are_not_slower_and_the_failure_is_logged_once(
        request, busi, tmp_path_factory, protocol):
    with collector_down_server(tmp_path_factory, protocol) as server:
        th.attach_diagnostics(request.node, None, server)
        started = time.monotonic()
        for _ in range(SAGAS_WHILE_DOWN):
            took, gid, ctx = timed_saga(server, busi)
            assert took < SUBMIT_BUDGET, "a wait_result submit took %.2f s with the collector down (budget %.1f s)" % (
                took, SUBMIT_BUDGET)
            assert server.query(gid)["transaction"]["status"] == "succeed", "saga %s should have succeeded" % gid
            assert all(x.context and x.context.trace_id == ctx.trace_id for x in busi.hits(gid)), \
                "branches should still get the trace context: %s" % busi.hits(gid)
        time.sleep(max(0.0, WATCH_SECONDS - (time.monotonic() - started)))
        warnings = th.export_warnings(server)
        assert 1 <= len(warnings) <= 2, "export failures over %.0f s should be logged once (at most twice) at " \
            "warning level or above, got %d line(s):\n%s" % (WATCH_SECONDS, len(warnings),
                                                            "\n".join(w.text for w in warnings))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_with_the_collector_down_sigterm_still_stops_the_server_promptly(request, busi, tmp_path_factory, protocol):
    with collector_down_server(tmp_path_factory, protocol) as server:
        th.attach_diagnostics(request.node, None, server)
        timed_saga(server, busi)  # spans waiting for a collector that is not there
        time.sleep(0.5)
        t0 = time.monotonic()
        server.proc.terminate()
        try:
            server.proc.wait(timeout=SHUTDOWN_BUDGET)
        except subprocess.TimeoutExpired:
            pass
        took = time.monotonic() - t0
        assert server.proc.poll() is not None, "dtm-server should exit within %.0f s of SIGTERM although the " \
            "collector is down; still running after %.1f s" % (SHUTDOWN_BUDGET, took)


def test_a_branch_error_log_line_carries_the_trace_and_the_retry_is_a_backed_off_round(request, receiver, busi,
                                                                                        server):
    th.attach_diagnostics(request.node, receiver, server)
    ctx, gid = th.new_context(), h.new_gid("trace-log")
    busi.on("TransIn", busi.error(), busi.ok(), gid=gid)
    door = submit_saga(server, busi, ctx, gid, retry_interval=1)  # retried ~2 s later (back-off 1 → 2)
    th.assert_final(server, gid, "succeed")
    hits = busi.hits(gid, 3)
    th.assert_calls(hits, [("TransOut", "01", "action"), ("TransIn", "02", "action"), ("TransIn", "02", "action")])
    th.assert_lineage(receiver, ctx, hits, busi, gid, door.span_name("submit"), results=["SUCCESS", "ERROR", "SUCCESS"])

    rounds = th.rounds_of(receiver, gid)
    assert len(rounds) == 2, "expected 2 dtm.round spans, got %d\n%s" % (len(rounds), receiver.render(ctx.trace_id))
    th.assert_round(rounds[0], "submit", "submitted", "submitted", "error", [])
    back_off = th.events(rounds[0], "dtm.back_off")
    assert [e.get("dtm.next_cron_interval") for e in back_off] == [2], \
        "the first round should have one dtm.back_off event with dtm.next_cron_interval 2 (1 s doubled), got %s" % (
            back_off,)
    th.assert_round(rounds[1], "retry", "submitted", "succeed", "ok", [("submitted", "succeed")])

    lines = [r for r in th.log_records(server) if r.get("gid") == gid and "branch error" in r.message]
    assert lines, "a 'branch error, will retry' line with gid=%s should be logged" % gid
    exported = {s["span_id"] for s in receiver.spans(ctx.trace_id)}
    for line in lines:
        assert line.level == "warning", "the branch error should be a warning: %s" % line.text
        assert line.get("trace_id") == ctx.trace_id, "the line should carry trace_id=%s: %s" % (ctx.trace_id, line.text)
        assert line.get("span_id") in exported, "the line's span_id should be one of the trace's exported spans " \
            "%s: %s" % (sorted(exported), line.text)


def test_a_full_export_queue_drops_spans_counts_them_and_transactions_go_on(request, receiver, busi,
                                                                           tmp_path_factory):
    env = receiver.server_env(HTTP_PROTOBUF, OTEL_BSP_MAX_QUEUE_SIZE=1, OTEL_BSP_MAX_EXPORT_BATCH_SIZE=1)
    with th.traced_server(tmp_path_factory, "trace-queue", env) as server:
        th.attach_diagnostics(request.node, receiver, server)
        gids = [h.new_gid("trace-burst") for _ in range(BURST)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda gid: submit_saga(server, busi, th.new_context(), gid, wait_result=True), gids))
        failed = [g for g in gids if server.query(g)["transaction"]["status"] != "succeed"]
        assert not failed, "every saga of the burst should succeed, these did not: %s" % failed
        deadline = time.monotonic() + 5
        while (th.metric_total(server, "dtm_trace_spans_dropped_total") or 0) <= 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        dropped = th.metric_total(server, "dtm_trace_spans_dropped_total")
        assert dropped is not None and dropped > 0, "dtm_trace_spans_dropped_total at /api/metrics should be > 0 " \
            "after %d sagas against a queue of 1 span, got %r" % (BURST, dropped)


ENDPOINT_SETTINGS = {
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": lambda r: ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": r.http_endpoint
                                                      + CUSTOM_PATH}, HTTP_PROTOBUF),
    "TRACING_ENDPOINT": lambda r: ({"TRACING_ENDPOINT": r.http_endpoint}, HTTP_PROTOBUF),
    "TRACING_TRACES_ENDPOINT": lambda r: ({"TRACING_TRACES_ENDPOINT": r.http_endpoint + CUSTOM_PATH}, HTTP_PROTOBUF),
    "TRACING_PROTOCOL=grpc": lambda r: ({"TRACING_ENDPOINT": r.grpc_endpoint, "TRACING_PROTOCOL": GRPC}, GRPC),
}


@pytest.mark.parametrize("setting", sorted(ENDPOINT_SETTINGS))
def test_each_endpoint_setting_turns_tracing_on(request, receiver, busi, tmp_path_factory, setting):
    env, protocol = ENDPOINT_SETTINGS[setting](receiver)
    env.update(OTEL_BSP_SCHEDULE_DELAY="100", OTEL_SERVICE_NAME="dtm-settings")
    with th.traced_server(tmp_path_factory, "trace-setting", env) as server:
        th.attach_diagnostics(request.node, receiver, server)
        ctx, gid = th.new_context(), h.new_gid("trace-setting")
        door = submit_saga(server, busi, ctx, gid, wait_result=True)
        th.assert_lineage(receiver, ctx, busi.hits(gid, 2), busi, gid, door.span_name("submit"))
        spans = receiver.spans(ctx.trace_id)
        assert {s["protocol"] for s in spans} == {protocol}, "spans should come by %s, got %s" % (
            protocol, sorted({s["protocol"] for s in spans}))
        assert {s["resource"].get("service.name") for s in spans} == {"dtm-settings"}, \
            "OTEL_SERVICE_NAME should name the service: %s" % sorted({s["resource"].get("service.name") for s in spans})


def test_without_an_endpoint_tracing_stays_off_and_a_traceparent_changes_nothing(request, busi, tmp_path_factory):
    # Everything but an endpoint: tracing must stay off.
    env = {"OTEL_SERVICE_NAME": "dtm-untraced", "OTEL_EXPORTER_OTLP_PROTOCOL": HTTP_PROTOBUF,
           "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with th.traced_server(tmp_path_factory, "untraced", env, tracing=False) as server:
        th.attach_diagnostics(request.node, None, server)
        ctx, gid = th.new_context(), h.new_gid("untraced")
        t0 = time.monotonic()
        submit_saga(server, busi, ctx, gid, wait_result=True)
        assert time.monotonic() - t0 < SUBMIT_BUDGET, "a wait_result submit should answer within %.1f s" % SUBMIT_BUDGET
        th.assert_final(server, gid, "succeed")
        for hit in busi.hits(gid, 2):
            assert hit.traceparent in (None, ctx.traceparent), "without tracing, branch call %s should get no new " \
                "span id (no traceparent, or the client's as stored): got %r" % (hit.summary(), hit.traceparent)
        assert not th.says_tracing_on(server, timeout=0.2), "the log should not say 'tracing on' without an endpoint"
        traced_lines = [r.text for r in th.log_records(server) if r.get("trace_id")]
        assert not traced_lines, "without tracing no log line should carry a trace_id: %s" % traced_lines
