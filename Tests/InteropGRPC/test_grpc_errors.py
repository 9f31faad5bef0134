"""Errors and edge cases of the gRPC API: status codes and messages (dtm-spec §3.2, §6.2, §8.8, §17.3, §17.39),
malformed / oversized / unknown requests, wait_result, health.
"""

import grpc
import pytest

import grpc_harness as h

MiB = 1024 * 1024
INVALID = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL)


def _assert_still_serving(dtm_grpc, pb):
    gid = dtm_grpc.NewGid(pb.Empty()).Gid
    assert len(gid) == 22, gid


def _finished_saga(dtm_server, dtm_grpc, pb, svc, tag):
    gid = h.new_gid(tag)
    dtm_grpc.Submit(h.saga_request(pb, gid, h.busi_saga_steps(svc), h.busi_payloads(pb), wait_result=True))
    assert dtm_server.query(gid)["transaction"]["status"] == "succeed"
    return gid


# ----------------------------------------------------------------------------------------------------------------
# Business errors: FAILURE -> ABORTED, ONGOING -> FAILED_PRECONDITION


def test_resubmit_of_finished_saga_is_aborted_cannot_sumbmit(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = _finished_saga(dtm_server, dtm_grpc, pb, grpc_busi, "resubmit")
    assert len(grpc_busi.calls(gid)) == 2

    # `current status 'succeed', cannot sumbmit. FAILURE` (sic) -> ABORTED with that text
    h.expect_rpc_error(dtm_grpc.Submit,
                       h.saga_request(pb, gid, h.busi_saga_steps(grpc_busi), h.busi_payloads(pb)),
                       codes=grpc.StatusCode.ABORTED, contains=["cannot sumbmit", "succeed"])
    h.settle()
    assert h.summaries(grpc_busi.calls(gid)) == [("/busi.Busi/TransOut", "01", "action"),
                                                 ("/busi.Busi/TransIn", "02", "action")]
    assert dtm_server.query(gid)["transaction"]["status"] == "succeed"


def test_prepare_of_finished_saga_is_aborted_cannot_prepare(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = _finished_saga(dtm_server, dtm_grpc, pb, grpc_busi, "reprepare")
    h.expect_rpc_error(dtm_grpc.Prepare,
                       h.saga_request(pb, gid, h.busi_saga_steps(grpc_busi), h.busi_payloads(pb)),
                       codes=grpc.StatusCode.ABORTED, contains="cannot prepare")


def test_abort_of_saga_is_aborted_cannot_abort(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = _finished_saga(dtm_server, dtm_grpc, pb, grpc_busi, "abort-saga")
    h.expect_rpc_error(dtm_grpc.Abort, pb.DtmRequest(Gid=gid, TransType="saga"),
                       codes=grpc.StatusCode.ABORTED, contains="cannot abort")
    assert dtm_server.query(gid)["transaction"]["status"] == "succeed"


def test_abort_of_unknown_gid_is_an_error(dtm_server, dtm_grpc, pb):
    gid = h.new_gid("abort-unknown")
    h.expect_rpc_error(dtm_grpc.Abort, pb.DtmRequest(Gid=gid, TransType="tcc"),
                       codes=(grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), contains=gid)
    assert dtm_server.query(gid)["transaction"] is None


def test_wait_result_success_is_final_when_submit_returns(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = h.new_gid("wait-ok")
    reply = dtm_grpc.Submit(h.saga_request(pb, gid, h.busi_saga_steps(grpc_busi), h.busi_payloads(pb),
                                           wait_result=True))
    assert isinstance(reply, pb.Empty)
    # no polling: the round has finished before Submit answered (dtm-spec §8.8)
    assert dtm_server.query(gid)["transaction"]["status"] == "succeed"
    assert len(grpc_busi.calls(gid)) == 2
    h.settle()
    assert len(grpc_busi.calls(gid)) == 2


def test_wait_result_with_aborted_branch_is_aborted(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = h.new_gid("wait-fail")
    grpc_busi.on("TransIn", h.aborted("FAILURE"), gid=gid)
    e = h.expect_rpc_error(
        dtm_grpc.Submit,
        h.saga_request(pb, gid, h.busi_saga_steps(grpc_busi), h.busi_payloads(pb), wait_result=True),
        codes=grpc.StatusCode.ABORTED)
    # the message is `<rollback_reason> FAILURE`, and the reason names the failed branch
    assert grpc_busi.url("/busi.Busi/TransIn") in e.details(), e.details()
    q = dtm_server.query(gid)
    assert q["transaction"]["status"] == "failed", q  # compensation ran within the same round
    assert h.summaries(grpc_busi.calls(gid)) == h.FAILED_BUSI_SAGA_CALLS


def test_wait_result_with_ongoing_tcc_confirm_is_failed_precondition(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = h.new_gid("wait-ongoing")
    grpc_busi.on("TransOutConfirm", h.ongoing(), h.OK, gid=gid)
    dtm_grpc.Prepare(pb.DtmRequest(Gid=gid, TransType="tcc", TransOptions=h.trans_options(pb, retry_interval=1)))
    payload = pb.ReqGrpc(Amount=30).SerializeToString()
    dtm_grpc.RegisterBranch(pb.DtmBranchRequest(
        Gid=gid, TransType="tcc", BranchID="01", BusiPayload=payload,
        Data={"confirm": grpc_busi.url("/busi.Busi/TransOutConfirm"),
              "cancel": grpc_busi.url("/busi.Busi/TransOutRevert")}))
    # the synchronous round ends with ONGOING -> FAILED_PRECONDITION (dtm-spec §8.8)
    h.expect_rpc_error(dtm_grpc.Submit,
                       pb.DtmRequest(Gid=gid, TransType="tcc",
                                     TransOptions=h.trans_options(pb, wait_result=True, retry_interval=1)),
                       codes=grpc.StatusCode.FAILED_PRECONDITION)
    assert dtm_server.query(gid)["transaction"]["status"] == "submitted"
    # the cron loop confirms it later
    q = dtm_server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == "succeed", q
    h.settle()
    calls = grpc_busi.calls(gid)
    assert h.summaries(calls) == [("/busi.Busi/TransOutConfirm", "01", "confirm")] * 2
    assert all(c.request == payload for c in calls)


# ----------------------------------------------------------------------------------------------------------------
# Bad requests


TRUNCATED = b"\x0a\x05ab"  # field 1, length 5, but only 2 bytes follow
BAD_TAG = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"  # a varint key longer than 10 bytes


@pytest.mark.parametrize("method", ["Submit", "Prepare", "Abort", "RegisterBranch", "PrepareWorkflow", "Subscribe",
                                    "NewGid"])
@pytest.mark.parametrize("garbage", [TRUNCATED, BAD_TAG], ids=["truncated", "bad_varint"])
def test_malformed_protobuf_is_rejected_and_server_keeps_serving(dtm_grpc, pb, method, garbage):
    h.expect_rpc_error(dtm_grpc.raw("/dtmgimp.Dtm/" + method), garbage, codes=INVALID)
    _assert_still_serving(dtm_grpc, pb)


def test_raw_bytes_path_accepts_a_well_formed_request(dtm_server, dtm_grpc, pb):
    # control for the test above: the same raw path with valid bytes works
    reply = dtm_grpc.raw("/dtmgimp.Dtm/NewGid")(b"")
    assert pb.DtmGidReply.FromString(reply).Gid


@pytest.mark.parametrize("path", ["/dtmgimp.Dtm/Nope", "/nope.Nope/Submit", "/dtmgimp.Dtmx/NewGid"])
def test_unknown_method_is_unimplemented(dtm_grpc, pb, path):
    h.expect_rpc_error(dtm_grpc.raw(path), b"", codes=grpc.StatusCode.UNIMPLEMENTED)
    _assert_still_serving(dtm_grpc, pb)


def test_oversized_message_is_resource_exhausted(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = h.new_gid("huge")
    big = b"\x08\x1e" + b"x" * (5 * MiB)
    request = h.saga_request(pb, gid, h.busi_saga_steps(grpc_busi), [big, b"\x08\x1e"])
    assert request.ByteSize() > 5 * MiB
    h.expect_rpc_error(dtm_grpc.Submit, request, codes=grpc.StatusCode.RESOURCE_EXHAUSTED)
    _assert_still_serving(dtm_grpc, pb)
    assert dtm_server.query(gid)["transaction"] is None
    assert grpc_busi.calls(gid) == []


def test_submit_with_only_gid_is_rejected(dtm_server, dtm_grpc, pb):
    gid = h.new_gid("no-type")
    h.expect_rpc_error(dtm_grpc.Submit, pb.DtmRequest(Gid=gid), codes=INVALID)
    _assert_still_serving(dtm_grpc, pb)


def test_submit_with_unknown_trans_type_is_rejected(dtm_grpc, pb, grpc_busi):
    gid = h.new_gid("bad-type")
    h.expect_rpc_error(dtm_grpc.Submit,
                       pb.DtmRequest(Gid=gid, TransType="nope", Steps="null", TransOptions=h.trans_options(pb)),
                       codes=INVALID)
    assert grpc_busi.calls(gid) == []


def test_submit_with_steps_that_are_not_json_is_rejected(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = h.new_gid("bad-steps")
    h.expect_rpc_error(dtm_grpc.Submit,
                       pb.DtmRequest(Gid=gid, TransType="saga", Steps="[{not json", BinPayloads=[b"\x08\x1e"]),
                       codes=INVALID + (grpc.StatusCode.UNKNOWN,))
    assert dtm_server.query(gid)["transaction"] is None


# ----------------------------------------------------------------------------------------------------------------
# Health


def test_health_check_serving_and_server_still_serving(dtm_grpc, pb):
    assert dtm_grpc.raw("/grpc.health.v1.Health/Check")(b"") == b"\x08\x01"
    _assert_still_serving(dtm_grpc, pb)


# ----------------------------------------------------------------------------------------------------------------
# branch_headers may not choose the branch's virtual host or framing (README, Security)


@pytest.mark.parametrize("name", ["Host", "host", "Content-Length", "Transfer-Encoding", "Connection", "TE", "Keep-Alive", "Proxy-Authorization", ":authority"])
def test_branch_headers_may_not_set_host_or_hop_by_hop_headers(dtm_server, dtm_grpc, pb, grpc_busi, name):
    gid = h.new_gid("bh-reserved")
    request = h.saga_request(pb, gid, h.busi_saga_steps(grpc_busi), h.busi_payloads(pb))
    request.TransOptions.BranchHeaders[name] = "admin.internal"
    h.expect_rpc_error(dtm_grpc.Submit, request, codes=grpc.StatusCode.INVALID_ARGUMENT, contains=["'%s'" % name, "may not be set"])
    assert dtm_server.query(gid)["transaction"] is None
    assert grpc_busi.calls(gid) == []
