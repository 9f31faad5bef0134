"""How the server calls gRPC branches: metadata, branch headers, deadline, payload bytes, and how it reads the
branch's status (dtm-spec §7.3, §7.6, §8.2, §9.3, Appendix A.4).

The branch services are grpcio servers answering on raw bytes (grpc_harness.GrpcBranchService).
"""

import pytest
import requests

import grpc_harness as h

HEADERS = {"test_header": "test_header_value", "X-Request-Source": "swift-dtm-interop"}
# what the branch must see: keys lower-cased (gRPC metadata keys are lower case; dtm-spec §7.3)
EXPECTED_HEADERS = {"test_header": "test_header_value", "x-request-source": "swift-dtm-interop"}


def test_branch_calls_carry_dtm_metadata_branch_headers_deadline_and_exact_bytes(dtm_server, dtm_grpc, pb,
                                                                                  grpc_busi):
    gid = h.new_gid("md")
    payloads = h.busi_payloads(pb, amount=42)
    dtm_grpc.Submit(h.saga_request(pb, gid, h.busi_saga_steps(grpc_busi), payloads,
                                   branch_headers=HEADERS, request_timeout=7))
    q = dtm_server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == "succeed", q
    h.settle()

    calls = grpc_busi.calls(gid)
    assert h.summaries(calls) == [("/busi.Busi/TransOut", "01", "action"), ("/busi.Busi/TransIn", "02", "action")]
    for call, branch_id, payload in zip(calls, ("01", "02"), payloads):
        h.assert_dtm_metadata(call, gid, "saga", branch_id, "action", extra=EXPECTED_HEADERS, max_deadline=7)
        # the deadline is the transaction's RequestTimeout (7 s), not the server default (3 s)
        assert call.time_remaining > 3.5, call.time_remaining
        assert call.request == payload


def test_failed_action_is_compensated_with_same_bytes_metadata_and_headers(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = h.new_gid("comp")
    grpc_busi.on("TransIn", h.aborted("FAILURE"), gid=gid)
    payloads = h.busi_payloads(pb)
    dtm_grpc.Submit(h.saga_request(pb, gid, h.busi_saga_steps(grpc_busi), payloads, branch_headers=HEADERS))

    q = dtm_server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    trans = q["transaction"]
    assert trans["status"] == "failed", q
    reason = trans.get("rollback_reason") or ""
    assert grpc_busi.url("/busi.Busi/TransIn") in reason and "FAILURE" in reason, reason
    h.settle()

    calls = grpc_busi.calls(gid)
    assert h.summaries(calls) == h.FAILED_BUSI_SAGA_CALLS
    assert [c.request for c in calls] == [payloads[0], payloads[1], payloads[1], payloads[0]]
    for call in calls:
        h.assert_dtm_metadata(call, gid, "saga", call.branch_id, call.op, extra=EXPECTED_HEADERS, max_deadline=3)
    assert h.branch_rows(dtm_server.query(gid)) == [
        ("01", "compensate", "succeed"),
        ("01", "action", "succeed"),
        ("02", "compensate", "succeed"),
        ("02", "action", "failed"),
    ]


@pytest.mark.parametrize(
    "reply",
    [h.ongoing("ONGOING"), h.aborted("ONGOING")],
    ids=["failed_precondition", "legacy_aborted_ONGOING"],
)
def test_ongoing_action_is_retried_not_compensated(dtm_server, dtm_grpc, pb, grpc_busi, reply):
    # FAILED_PRECONDITION -> ONGOING; ABORTED with message exactly "ONGOING" -> ONGOING too (legacy, §7.3)
    gid = h.new_gid("ongoing")
    grpc_busi.on("TransIn", reply, h.OK, gid=gid)
    payloads = h.busi_payloads(pb)
    dtm_grpc.Submit(h.saga_request(pb, gid, h.busi_saga_steps(grpc_busi), payloads, retry_interval=1,
                                   branch_headers=HEADERS))

    q = dtm_server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == "succeed", q
    h.settle()
    calls = grpc_busi.calls(gid)
    assert h.summaries(calls) == [
        ("/busi.Busi/TransOut", "01", "action"),
        ("/busi.Busi/TransIn", "02", "action"),
        ("/busi.Busi/TransIn", "02", "action"),
    ]
    assert [c.request for c in calls] == [payloads[0], payloads[1], payloads[1]]
    # the retry comes from the cron loop, which must still send the stored branch headers
    h.assert_dtm_metadata(calls[2], gid, "saga", "02", "action", extra=EXPECTED_HEADERS)


def test_unavailable_action_is_retried_with_back_off(dtm_server, dtm_grpc, pb, grpc_busi):
    # any status other than OK / ABORTED / FAILED_PRECONDITION is "unknown result": retried later with back-off
    gid = h.new_gid("unavail")
    grpc_busi.on("TransOut", h.unavailable(), h.unavailable(), h.OK, gid=gid)
    payloads = h.busi_payloads(pb)
    # retry_interval 1 -> retries after ~2 s and ~4 s (dtm-spec §9.3)
    dtm_grpc.Submit(h.saga_request(pb, gid, h.busi_saga_steps(grpc_busi), payloads, retry_interval=1,
                                   branch_headers=HEADERS))

    q = dtm_server.wait_for_status(gid, timeout=25)
    assert q["transaction"]["status"] == "succeed", q
    h.settle()
    calls = grpc_busi.calls(gid)
    assert h.summaries(calls) == [("/busi.Busi/TransOut", "01", "action")] * 3 + [
        ("/busi.Busi/TransIn", "02", "action")]
    assert [c.request for c in calls] == [payloads[0]] * 3 + [payloads[1]]
    for call in calls:
        h.assert_dtm_metadata(call, gid, "saga", call.branch_id, "action", extra=EXPECTED_HEADERS)
    # back-off: the retries are spaced (first one ~2 s later), not immediate
    assert calls[1].time - calls[0].time >= 1.0, [c.time for c in calls]
    assert calls[2].time - calls[1].time >= 1.0, [c.time for c in calls]


def test_retry_limit_retries_at_once_within_the_round(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = h.new_gid("retry-limit")
    grpc_busi.on("TransOut", h.unavailable(), h.OK, gid=gid)
    payloads = h.busi_payloads(pb)
    dtm_grpc.Submit(h.saga_request(pb, gid, h.busi_saga_steps(grpc_busi), payloads, retry_limit=2))
    # without RetryLimit the retry would wait for the back-off (>= 20 s with the default RetryInterval 10)
    q = dtm_server.wait_for_status(gid, "succeed", timeout=6)
    assert q["transaction"]["status"] == "succeed", q
    h.settle()
    assert h.summaries(grpc_busi.calls(gid)) == [
        ("/busi.Busi/TransOut", "01", "action"),
        ("/busi.Busi/TransOut", "01", "action"),
        ("/busi.Busi/TransIn", "02", "action"),
    ]


def test_retry_limit_exceeded_aborts_and_compensates(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = h.new_gid("retry-over")
    grpc_busi.on("TransOut", h.unavailable(), gid=gid)  # forever
    payloads = h.busi_payloads(pb)
    dtm_grpc.Submit(h.saga_request(pb, gid, h.busi_saga_steps(grpc_busi), payloads, retry_limit=1))
    q = dtm_server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    trans = q["transaction"]
    assert trans["status"] == "failed", q
    assert trans.get("rollback_reason") == "RetryCount is greater than RetryLimit, RetryLimit: 1", trans
    h.settle()
    # 1 call + 1 immediate retry, then the action that may have run is compensated (dtm-spec §8.2 step 10)
    calls = grpc_busi.calls(gid)
    assert h.summaries(calls) == [
        ("/busi.Busi/TransOut", "01", "action"),
        ("/busi.Busi/TransOut", "01", "action"),
        ("/busi.Busi/TransOutRevert", "01", "compensate"),
    ]
    assert all(c.request == payloads[0] for c in calls)


def test_unimplemented_method_on_the_branch_server_is_retried_not_failed(dtm_server, dtm_grpc, pb, grpc_services):
    # a branch URL naming a service the target does not serve: UNIMPLEMENTED is "unknown result" -> the saga
    # stays submitted (retried), it is never compensated as a business failure
    svc = grpc_services("only-busi", services={"busi.Busi"})
    gid = h.new_gid("unimpl")
    steps = [{"action": svc.url("/nope.Nope/TransOut"), "compensate": svc.url("/busi.Busi/TransOutRevert")}]
    dtm_grpc.Submit(h.saga_request(pb, gid, steps, [pb.ReqGrpc(Amount=1).SerializeToString()], retry_interval=1))
    calls = svc.wait_for_calls(2, gid=gid, timeout=10)
    assert len(calls) >= 2, calls
    assert all(c.summary() == ("/nope.Nope/TransOut", "01", "action") for c in calls), calls
    q = dtm_server.query(gid)
    assert q["transaction"]["status"] == "submitted", q
    assert h.branch_rows(q) == [("01", "compensate", "prepared"), ("01", "action", "prepared")]
    assert svc.calls(gid)[0] is calls[0]
    # end it without compensation so the cron loop stops retrying (dtm-spec §4.6)
    r = requests.post(dtm_server.api + "/forceStop", json={"gid": gid}, timeout=5)
    assert r.status_code == 200, r.text
    assert dtm_server.query(gid)["transaction"]["status"] == "failed"
