"""Sagas driven through the official Python client (PyPI `dtmcli` 1.7.7.0) against the real swift-dtm server.

dtmcli is used exactly as its users use it:

    from dtmcli import saga, utils
    gid = utils.gen_gid(dtm)                      # GET  <dtm>/newGid
    s = saga.Saga(dtm, gid)
    s.add(body, action_url, compensate_url)       # one step; body is json.dumps()-ed into `payloads`
    s.submit()                                    # POST <dtm>/submit with s.trans_base.__dict__ as JSON

dtmcli's Saga has no wait_result setter (only Msg has set_wait_result()); the option is the TransBase attribute
`wait_result`, which is serialized with every submit, so users set `s.trans_base.wait_result = True`.

Expected behaviour: dtm-spec §4.4, §7.2, §7.5, §8.2, §8.8 and Appendix A.1/A.2.
"""

import base64
import json

import pytest
from dtmcli import saga, utils

from dtmcli_support import AMOUNT, INSUFFICIENT, branch_rows, call_summary, new_gid, settle_and_get_calls


def quick_start_saga(dtm, busi, gid, body=AMOUNT):
    """The DTM quick-start saga: TransOut (compensated by TransOutRevert) then TransIn (TransInRevert)."""
    return (
        saga.Saga(dtm, gid)
        .add(body, busi.url("TransOut"), busi.url("TransOutRevert"))
        .add(body, busi.url("TransIn"), busi.url("TransInRevert"))
    )


def assert_saga_branch_call(call, name, gid, branch_id, op, body=AMOUNT):
    """One server→branch call as in dtm-spec §7.2 / Appendix A.1."""
    assert call.method == "POST", call
    assert call.path == "/api/busi/" + name, call
    # exactly these four query parameters, each once (the server adds no `dtm` parameter)
    assert call.query == {"gid": gid, "trans_type": "saga", "branch_id": branch_id, "op": op}, call
    assert all(len(v) == 1 for v in call.query_multi.values()), call.query_multi
    assert call.headers.get("content-type", "").lower().startswith("application/json"), call.headers
    # the payload is forwarded verbatim: dtmcli stores json.dumps(body), i.e. '{"amount": 30}' with a space
    assert call.body == json.dumps(body), call
    assert call.json() == body


# ----------------------------------------------------------------------------------------------------------------


def test_new_gid_via_dtmcli(dtm):
    gid = utils.gen_gid(dtm)
    assert isinstance(gid, str)
    assert gid.strip() == gid and gid != ""
    assert not any(ch in gid for ch in "\n\r; "), repr(gid)
    other = utils.gen_gid(dtm)
    assert isinstance(other, str) and other != ""
    assert other != gid, "two newGid calls returned the same gid"


def test_saga_quick_start_succeeds(dtm, dtm_server, busi):
    gid = new_gid("saga", "ok")
    quick_start_saga(dtm, busi, gid).submit()

    q = dtm_server.wait_for_status(gid, timeout=15)
    trans = q["transaction"]
    assert trans["status"] == "succeed", q
    assert trans["gid"] == gid
    assert trans["trans_type"] == "saga"
    assert not trans.get("rollback_reason"), trans

    calls = settle_and_get_calls(busi, gid)
    assert call_summary(calls) == [("TransOut", "01", "action"), ("TransIn", "02", "action")]
    assert_saga_branch_call(calls[0], "TransOut", gid, "01", "action")
    assert_saga_branch_call(calls[1], "TransIn", gid, "02", "action")

    q = dtm_server.query(gid)
    assert q["transaction"]["status"] == "succeed"
    assert branch_rows(q) == [
        ("01", "compensate", "prepared"),
        ("01", "action", "succeed"),
        ("02", "compensate", "prepared"),
        ("02", "action", "succeed"),
    ]


def test_saga_query_shows_branch_urls_and_payloads(dtm, dtm_server, busi):
    gid = new_gid("saga", "rows")
    quick_start_saga(dtm, busi, gid).submit()
    q = dtm_server.wait_for_status(gid, timeout=15)
    assert q["transaction"]["status"] == "succeed", q

    expected_urls = [
        busi.url("TransOutRevert"),
        busi.url("TransOut"),
        busi.url("TransInRevert"),
        busi.url("TransIn"),
    ]
    assert [b.get("url") for b in q["branches"]] == expected_urls
    assert all(b.get("gid") == gid for b in q["branches"]), q["branches"]
    # bin_data is the step payload, shown base64-encoded (Go []byte JSON convention, dtm-spec §2.2)
    for b in q["branches"]:
        assert base64.b64decode(b.get("bin_data") or "") == json.dumps(AMOUNT).encode(), b


def test_saga_failing_trans_in_is_compensated(dtm, dtm_server, busi):
    gid = new_gid("saga", "fail")
    busi.on("TransIn", (409, INSUFFICIENT), gid=gid)
    quick_start_saga(dtm, busi, gid).submit()

    q = dtm_server.wait_for_status(gid, timeout=15)
    trans = q["transaction"]
    assert trans["status"] == "failed", q

    reason = trans.get("rollback_reason") or ""
    assert "reason:insufficient" in reason, reason
    assert busi.url("TransIn") in reason, reason

    calls = settle_and_get_calls(busi, gid)
    # the failed step's own compensation runs too, then compensation in reverse order
    assert call_summary(calls) == [
        ("TransOut", "01", "action"),
        ("TransIn", "02", "action"),
        ("TransInRevert", "02", "compensate"),
        ("TransOutRevert", "01", "compensate"),
    ]
    assert_saga_branch_call(calls[0], "TransOut", gid, "01", "action")
    assert_saga_branch_call(calls[1], "TransIn", gid, "02", "action")
    assert_saga_branch_call(calls[2], "TransInRevert", gid, "02", "compensate")
    assert_saga_branch_call(calls[3], "TransOutRevert", gid, "01", "compensate")

    q = dtm_server.query(gid)
    assert q["transaction"]["status"] == "failed"
    assert branch_rows(q) == [
        ("01", "compensate", "succeed"),
        ("01", "action", "succeed"),
        ("02", "compensate", "succeed"),
        ("02", "action", "failed"),
    ]


def test_saga_wait_result_success_is_finished_when_submit_returns(dtm, dtm_server, busi):
    gid = new_gid("saga", "wait-ok")
    s = quick_start_saga(dtm, busi, gid)
    s.trans_base.wait_result = True  # dtmcli's Saga has no setter; this is the serialized option
    s.submit()  # raises on any non-200 answer or a body containing FAILURE

    # no polling: with wait_result the round has finished before submit answered (dtm-spec §8.8)
    q = dtm_server.query(gid)
    assert q["transaction"] is not None, q
    assert q["transaction"]["status"] == "succeed", q
    assert call_summary(busi.calls(gid)) == [("TransOut", "01", "action"), ("TransIn", "02", "action")]

    calls = settle_and_get_calls(busi, gid)
    assert len(calls) == 2, calls
    assert_saga_branch_call(calls[0], "TransOut", gid, "01", "action")
    assert_saga_branch_call(calls[1], "TransIn", gid, "02", "action")


def test_saga_wait_result_failure_raises_dtm_failure(dtm, dtm_server, busi):
    gid = new_gid("saga", "wait-fail")
    busi.on("TransIn", (409, INSUFFICIENT), gid=gid)
    s = quick_start_saga(dtm, busi, gid)
    s.trans_base.wait_result = True
    # the round ends `failed` with a rollback_reason -> 409 "<reason> FAILURE" -> dtmcli raises DTMFailureError
    with pytest.raises(utils.DTMFailureError):
        s.submit()

    q = dtm_server.query(gid)
    assert q["transaction"]["status"] == "failed", q
    assert "reason:insufficient" in (q["transaction"].get("rollback_reason") or ""), q
    assert call_summary(busi.calls(gid)) == [
        ("TransOut", "01", "action"),
        ("TransIn", "02", "action"),
        ("TransInRevert", "02", "compensate"),
        ("TransOutRevert", "01", "compensate"),
    ]


def test_resubmitting_a_finished_saga_is_rejected(dtm, dtm_server, busi):
    gid = new_gid("saga", "resubmit")
    quick_start_saga(dtm, busi, gid).submit()
    q = dtm_server.wait_for_status(gid, timeout=15)
    assert q["transaction"]["status"] == "succeed", q
    assert len(busi.calls(gid)) == 2

    # stored status `succeed` -> 409 "current status 'succeed', cannot sumbmit. FAILURE" (dtm-spec §4.4)
    with pytest.raises(utils.DTMFailureError):
        quick_start_saga(dtm, busi, gid).submit()

    calls = settle_and_get_calls(busi, gid)
    assert call_summary(calls) == [("TransOut", "01", "action"), ("TransIn", "02", "action")]
    assert dtm_server.query(gid)["transaction"]["status"] == "succeed"
