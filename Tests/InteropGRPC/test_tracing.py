"""OpenTelemetry tracing: a client's W3C trace context goes through the coordinator into every branch call, and the
spans the coordinator exports to an OTLP collector (Tests/Interop/otlp_receiver.py) form one tree per transaction:

    client span ─ API span (SERVER: `POST /api/dtmsvr/submit`, `dtmgimp.Dtm/Submit`, JSON-RPC `submit`)
                   └ dtm.round (INTERNAL, one per processing round)
                      └ one CLIENT span per branch call, whose id the branch receives in its `traceparent`

for sagas submitted over HTTP, gRPC and JSON-RPC with HTTP and gRPC branches, failing branches (span status),
TCC (prepare + registerBranch + submit), a msg whose check-back the cron loop makes, and a workflow resumed by the
cron loop. Every test runs twice: exported over OTLP/HTTP (protobuf) and over OTLP/gRPC, each with a dtm-server and
a receiver of its own (module-scoped), started with OTEL_EXPORTER_OTLP_ENDPOINT / _PROTOCOL,
OTEL_BSP_SCHEDULE_DELAY=100, OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS.

Runtime behaviour (restart, sampling, collector down, logs, queue bounds, configuration) is in test_tracing_runtime.py.
"""

import time
from collections import Counter, namedtuple

import pytest

import grpc_harness as h
import tracing_harness as th
from otlp_receiver import PROTOCOLS, OtlpReceiver

RESOURCE_ATTRIBUTES = "deployment.environment=interop,team=dtm-tests"
EXPORT_HEADER = ("x-interop-token", "t0k3n")
CHECK_BACK_TIMEOUT = 2  # the msg's timeout_to_fail: the cron loop asks query_prepared once it is this old (s)

Traced = namedtuple("Traced", "protocol receiver server doors branches")


@pytest.fixture(scope="module", params=PROTOCOLS)
def traced(request, tmp_path_factory, pb):
    """A dtm-server exporting to its own receiver by one OTLP protocol, its doors, HTTP and gRPC branch services."""
    protocol = request.param
    with OtlpReceiver() as receiver, th.http_branches() as http_busi, th.grpc_branches(pb) as grpc_busi:
        env = receiver.server_env(protocol, OTEL_RESOURCE_ATTRIBUTES=RESOURCE_ATTRIBUTES,
                                  OTEL_EXPORTER_OTLP_HEADERS="%s=%s" % EXPORT_HEADER)
        with th.traced_server(tmp_path_factory, "traced-" + protocol.replace("/", "-"), env) as server, \
                th.doors(server, pb) as doors:
            yield Traced(protocol, receiver, server, doors, {"http": http_busi, "grpc": grpc_busi})


@pytest.fixture(autouse=True)
def _diagnostics(request, traced):
    th.attach_diagnostics(request.node, traced.receiver, traced.server)


def one_round(lineage):
    """All (client, round, api) of `lineage` are in one round; returns (round, api)."""
    rounds = {r["span_id"] for _, r, _ in lineage}
    assert len(rounds) == 1, "these branch calls should all be in one dtm.round span, got rounds %s" % sorted(rounds)
    return lineage[0][1], lineage[0][2]


def api_spans(receiver, ctx, count):
    """The SERVER spans whose parent is the client's span (waits for `count` of them), by name."""
    spans = receiver.wait_for_spans(count, trace_id=ctx.trace_id, kind="SERVER")
    return Counter(s["name"] for s in spans if s["parent_span_id"] == ctx.span_id), spans


def assert_span_counts(receiver, ctx, gid, rounds, clients):
    """Exactly `rounds` dtm.round and `clients` CLIENT spans were exported for `gid`, all in the client's trace."""
    mine = th.transaction_spans(receiver, gid)
    counted = Counter(s["kind"] if s["name"] != "dtm.round" else "round" for s in mine)
    assert (counted["round"], counted["CLIENT"]) == (rounds, clients), \
        "expected %d dtm.round and %d CLIENT spans for %s, got %s\n%s" % (
            rounds, clients, gid, dict(counted), receiver.render(ctx.trace_id))
    others = sorted({s["trace_id"] for s in mine} - {ctx.trace_id})
    assert not others, "spans of %s should all be in the client's trace %s, also got traces %s" % (
        gid, ctx.trace_id, others)


# ----------------------------------------------------------------------------------------------------------------
# Sagas


SAGA_ROUTES = [("http", "http"), ("http", "grpc"), ("grpc", "grpc"), ("json-rpc", "http")]


@pytest.mark.parametrize("door_name,branch_kind", SAGA_ROUTES, ids=["%s-api-%s-branches" % r for r in SAGA_ROUTES])
def test_saga_branch_calls_continue_the_client_trace(traced, door_name, branch_kind):
    door, busi = traced.doors[door_name], traced.branches[branch_kind]
    ctx, gid = th.new_context(), h.new_gid("trace-saga")
    door.call("submit", door.saga(gid, th.saga_steps(busi), busi.payloads(2), busi.protocol), ctx)
    th.assert_final(traced.server, gid, "succeed")
    hits = busi.hits(gid, 2)
    th.assert_calls(hits, [("TransOut", "01", "action"), ("TransIn", "02", "action")])

    rnd, api = one_round(th.assert_lineage(traced.receiver, ctx, hits, busi, gid, door.span_name("submit")))
    th.assert_api_span(api, door, "submit", gid, ctx.span_id)
    th.assert_round(rnd, "submit", "submitted", "succeed", "ok", [("submitted", "succeed")])
    names, _ = api_spans(traced.receiver, ctx, 1)
    assert names == Counter({door.span_name("submit"): 1}), "one API span per API call expected, got %s" % names
    assert_span_counts(traced.receiver, ctx, gid, rounds=1, clients=2)


@pytest.mark.parametrize("branch_kind", ["http", "grpc"])
def test_failing_branch_span_is_an_error_and_the_compensations_follow_in_the_round(traced, branch_kind):
    door, busi = traced.doors["http"], traced.branches[branch_kind]
    ctx, gid = th.new_context(), h.new_gid("trace-fail")
    busi.on("TransIn", busi.failure(), gid=gid)
    door.call("submit", door.saga(gid, th.saga_steps(busi), busi.payloads(2), busi.protocol), ctx)
    th.assert_final(traced.server, gid, "failed")
    hits = busi.hits(gid, 4)
    th.assert_calls(hits, [("TransOut", "01", "action"), ("TransIn", "02", "action"),
                        ("TransInRevert", "02", "compensate"), ("TransOutRevert", "01", "compensate")])

    lineage = th.assert_lineage(traced.receiver, ctx, hits, busi, gid, door.span_name("submit"),
                                results=["SUCCESS", "FAILURE", "SUCCESS", "SUCCESS"])
    rnd, _ = one_round(lineage)
    th.assert_round(rnd, "submit", "submitted", "failed", None, [("submitted", "aborting"), ("aborting", "failed")])
    assert_span_counts(traced.receiver, ctx, gid, rounds=1, clients=4)


@pytest.mark.parametrize("branch_kind", ["http", "grpc"])
def test_branches_get_our_traceparent_over_a_branch_header_one_and_the_client_tracestate(traced, branch_kind):
    door, busi = traced.doors["http"], traced.branches[branch_kind]
    ctx, gid = th.new_context(tracestate="interop=1,vendor=abc"), h.new_gid("trace-hdr")
    stale = th.new_context()
    door.call("submit", door.saga(gid, th.saga_steps(busi), busi.payloads(2), busi.protocol,
                                  branch_headers={"traceparent": stale.traceparent}), ctx)
    th.assert_final(traced.server, gid, "succeed")
    hits = busi.hits(gid, 2)
    for hit in hits:
        assert hit.traceparent_count == 1, "branch call %s should carry one traceparent, got %d" % (
            hit.summary(), hit.traceparent_count)
        assert hit.context and hit.context.trace_id == ctx.trace_id, \
            "branch call %s should carry the client's trace %s, not the branch_headers one %s: got %s" % (
                hit.summary(), ctx.trace_id, stale.trace_id, hit.traceparent)
    th.assert_lineage(traced.receiver, ctx, hits, busi, gid, door.span_name("submit"))
    for hit in hits:
        assert th.tracestate_members(hit.tracestate) == th.tracestate_members(ctx.tracestate), \
            "branch call %s should carry the client's tracestate %r, got %r" % (
                hit.summary(), ctx.tracestate, hit.tracestate)


# ----------------------------------------------------------------------------------------------------------------
# TCC, msg, workflow


@pytest.mark.parametrize("door_name", ["http", "grpc"])
def test_tcc_api_calls_and_confirms_are_one_trace(traced, door_name):
    door, busi = traced.doors[door_name], traced.branches[door_name]
    ctx, gid = th.new_context(), h.new_gid("trace-tcc")
    payload = busi.payloads(1)[0]
    door.call("prepare", door.tcc_prepare(gid, busi.protocol), ctx)
    for branch_id, name in (("01", "TransOut"), ("02", "TransIn")):  # the client's try phase
        door.call("registerBranch", door.tcc_branch(gid, branch_id, busi.url(name + "Confirm"),
                                                    busi.url(name + "Revert"), payload), ctx)
    door.call("submit", door.tcc_submit(gid), ctx)
    th.assert_final(traced.server, gid, "succeed")
    hits = busi.hits(gid, 2)
    th.assert_calls(hits, [("TransInConfirm", "02", "confirm"), ("TransOutConfirm", "01", "confirm")])

    rnd, api = one_round(th.assert_lineage(traced.receiver, ctx, hits, busi, gid, door.span_name("submit")))
    th.assert_round(rnd, "submit", "submitted", "succeed", "ok", [("submitted", "succeed")])
    names, spans = api_spans(traced.receiver, ctx, 4)
    want = Counter({door.span_name("prepare"): 1, door.span_name("registerBranch"): 2, door.span_name("submit"): 1})
    assert names == want, "one API span per call (prepare, 2 × registerBranch, submit) expected, got %s" % names
    for span in spans:
        method = next(m for m in ("prepare", "registerBranch", "submit") if span["name"] == door.span_name(m))
        th.assert_api_span(span, door, method, gid, ctx.span_id)
    assert_span_counts(traced.receiver, ctx, gid, rounds=1, clients=2)


def test_msg_check_back_by_the_cron_loop_continues_the_prepare_trace(traced):
    door, busi = traced.doors["http"], traced.branches["http"]
    ctx, gid = th.new_context(), h.new_gid("trace-msg")
    steps = [{"action": busi.url("TransOut")}, {"action": busi.url("TransIn")}]
    door.call("prepare", door.msg(gid, steps, busi.payloads(2), busi.url("QueryPrepared"), busi.protocol,
                                  timeout_to_fail=CHECK_BACK_TIMEOUT), ctx)  # never submitted by the client
    time.sleep(CHECK_BACK_TIMEOUT + 0.2)
    th.hurry_cron(traced.server, gid, lambda: busi.hits(gid))
    th.assert_final(traced.server, gid, "succeed")
    hits = busi.hits(gid, 3)
    th.assert_calls(hits, [("QueryPrepared", "00", "msg"), ("TransOut", "01", "action"), ("TransIn", "02", "action")])

    lineage = th.assert_lineage(traced.receiver, ctx, hits, busi, gid, door.span_name("prepare"))
    check_back_round = lineage[0][1]
    reason = check_back_round["attributes"].get("dtm.round_reason")
    assert reason in ("cron", "retry"), "the check-back's round was run by the cron loop: reason cron/retry " \
                                        "expected, got %r" % reason
    th.assert_api_span(lineage[0][2], door, "prepare", gid, ctx.span_id)


@pytest.mark.parametrize("door_name", ["http", "grpc"])
def test_workflow_resume_continues_the_prepare_trace_and_the_resumed_client_continues_it(traced, door_name):
    door, busi = traced.doors[door_name], traced.branches[door_name]
    ctx, gid = th.new_context(), h.new_gid("trace-wf")
    door.call("prepareWorkflow", door.workflow_prepare(gid, "wf-interop", b'{"amount": 30}', busi.resume_url(),
                                                       busi.protocol), ctx)
    th.hurry_cron(traced.server, gid, lambda: busi.hits(gid))  # the cron loop resumes the unfinished workflow
    hits = busi.hits(gid, 1)[:1]
    th.assert_calls(hits, [(busi.resume_name, "00", "wf-interop")])
    (_, rnd, api), = th.assert_lineage(traced.receiver, ctx, hits, busi, gid, door.span_name("prepareWorkflow"))
    assert rnd["attributes"].get("dtm.round_reason") in ("cron", "retry"), \
        "the resume's round was run by the cron loop: reason cron/retry expected, got %s" % rnd["attributes"]

    # The resumed client (the workflow SDK) records a step and finishes the workflow in the resume call's context.
    resumed = hits[0].context
    door.call("registerBranch", door.workflow_step(gid, "01", b"done"), resumed)
    door.call("submit", door.workflow_submit(gid), resumed)
    th.assert_final(traced.server, gid, "succeed")
    got = traced.receiver.wait_for(lambda _: traced.receiver.spans(ctx.trace_id, name=door.span_name("submit")),
                                   th.SPAN_TIMEOUT)
    assert got, "the resumed client's submit should make an API span in the trace %s\n%s" % (
        ctx.trace_id, traced.receiver.render(ctx.trace_id))
    th.assert_api_span(got[0], door, "submit", gid, resumed.span_id)


# ----------------------------------------------------------------------------------------------------------------
# The export itself


def test_exports_use_the_configured_protocol_headers_and_resource(traced):
    door, busi = traced.doors["http"], traced.branches["http"]
    ctx, gid = th.new_context(), h.new_gid("trace-export")
    door.call("submit", door.saga(gid, th.saga_steps(busi), busi.payloads(2), busi.protocol, wait_result=True), ctx)
    th.assert_lineage(traced.receiver, ctx, busi.hits(gid, 2), busi, gid, door.span_name("submit"))

    exports = traced.receiver.exports()
    assert {e["protocol"] for e in exports} == {traced.protocol}, "every export should come by %s, got %s" % (
        traced.protocol, sorted({e["protocol"] for e in exports}))
    name, value = EXPORT_HEADER
    wrong = [e["headers"].get(name) for e in exports if e["headers"].get(name) != value]
    assert not wrong, "every export should carry the OTEL_EXPORTER_OTLP_HEADERS header %s=%s, got %s" % (
        name, value, wrong)
    assert traced.receiver.rejected() == [], "the receiver refused requests: %s" % traced.receiver.rejected()
    for span in traced.receiver.spans(ctx.trace_id):
        resource = span["resource"]
        assert resource.get("service.name") == "dtm", "service.name should default to 'dtm', got %r on %r" % (
            resource.get("service.name"), span["name"])
        assert (resource.get("deployment.environment"), resource.get("team")) == ("interop", "dtm-tests"), \
            "OTEL_RESOURCE_ATTRIBUTES %r should be on every span's resource, got %s" % (RESOURCE_ATTRIBUTES, resource)
