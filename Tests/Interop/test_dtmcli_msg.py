"""Two-phase messages driven through the official Python client (PyPI `dtmcli` 1.7.7.0).

dtmcli is used exactly as its users use it (`dtmcli/msg.py`):

    from dtmcli import msg
    m = msg.Msg(dtm, gid).add(body, action_url).add(body, action_url2)
    m.submit()                                   # POST <dtm>/submit   (submit without prepare)
    m.prepare(query_prepared_url); ...; m.submit()   # POST <dtm>/prepare, then /submit
    m.do_and_submit(query_prepared_url, busi_call)   # prepare, busi_call(barrier), then submit / abort

Every request body is `m.trans_base.__dict__` (see README: null custom_data/protocol, passthrough_headers, ...),
so options are set as TransBase attributes, e.g. `m.trans_base.timeout_to_fail = 2` (serialized with prepare);
the only setter dtmcli has is `set_wait_result()`. dtmcli 1.7.7.0 has no `add_topic`: a topic step is added with
`add(body, "topic://<name>")`, which is exactly what the Go client's AddTopic puts on the wire.

Check-back tests: the msg is prepared with `timeout_to_fail = 2` and never submitted. Once it is older than that,
the test calls POST <dtm>/resetNextCronTime so the cron round does not wait for the cron lease; the server must then
GET query_prepared with query gid, trans_type=msg, branch_id=00, op=msg.

Expected behaviour: dtm-spec §2.6 (msg branch ids), §4.3/4.4/4.5, §7.2, §8.3, §10 and Appendix A.5.
"""

import json
import time
import uuid

import pytest
import requests
from dtmcli import msg, utils

from dtmcli_support import AMOUNT, branch_rows, call_summary, new_gid, settle_and_get_calls

CHECK_BACK_TIMEOUT = 2  # per-transaction timeout_to_fail used by the check-back tests (seconds)


def transfer_msg(dtm, busi, gid, body=AMOUNT):
    return msg.Msg(dtm, gid).add(body, busi.url("TransOut")).add(body, busi.url("TransIn"))


def assert_action_call(call, name, gid, branch_id, body=AMOUNT):
    assert call.method == "POST", call
    assert call.path == "/api/busi/" + name, call
    assert call.query == {"gid": gid, "trans_type": "msg", "branch_id": branch_id, "op": "action"}, call
    assert all(len(v) == 1 for v in call.query_multi.values()), call.query_multi
    assert call.headers.get("content-type", "").lower().startswith("application/json"), call.headers
    assert call.body == json.dumps(body), call  # payload forwarded byte for byte


def assert_check_back_call(call, gid):
    """The msg check-back (dtm-spec §8.3 step 1, §7.2, A.5): GET, no body, branch id 00, op msg."""
    assert call.method == "GET", call
    assert call.path == "/api/busi/QueryPrepared", call
    assert call.query == {"gid": gid, "trans_type": "msg", "branch_id": "00", "op": "msg"}, call
    assert call.body == "", call


def prepare_for_check_back(dtm, busi, gid):
    """A prepared msg whose client never submits, with timeout_to_fail = CHECK_BACK_TIMEOUT; returns prepare time."""
    m = transfer_msg(dtm, busi, gid)
    m.trans_base.timeout_to_fail = CHECK_BACK_TIMEOUT
    created = time.monotonic()
    m.prepare(busi.url("QueryPrepared"))
    return created


def drive_check_back(dtm, dtm_server, busi, gid, created, timeout=15.0):
    """Wait for the final status of `gid`.  Once the msg is older than its timeout and as long as no check-back
    arrived yet, bring its cron round forward (POST /resetNextCronTime, at most every 2 s)."""
    deadline = time.monotonic() + timeout
    last_reset = 0.0
    while True:
        q = dtm_server.query(gid)
        if (q.get("transaction") or {}).get("status") in ("succeed", "failed"):
            return q
        now = time.monotonic()
        if now >= deadline:
            pytest.fail("msg %s not finished after %.0f s: %s; calls: %s"
                        % (gid, timeout, json.dumps(q), busi.calls(gid)))
        asked = any(c.name == "QueryPrepared" for c in busi.calls(gid))
        if not asked and now - created >= CHECK_BACK_TIMEOUT + 0.2 and now - last_reset >= 2.0:
            r = requests.post(dtm + "/resetNextCronTime", json={"gid": gid}, timeout=5)
            assert r.status_code == 200, "resetNextCronTime -> HTTP %d %s" % (r.status_code, r.text)
            last_reset = now
        time.sleep(0.1)


# ----------------------------------------------------------------------------------------------------------------


def test_msg_submit_runs_actions_in_order(dtm, dtm_server, busi):
    gid = new_gid("msg", "submit")
    transfer_msg(dtm, busi, gid).submit()

    q = dtm_server.wait_for_status(gid, timeout=15)
    trans = q["transaction"]
    assert trans["status"] == "succeed", q
    assert trans["trans_type"] == "msg"
    assert trans["gid"] == gid

    calls = settle_and_get_calls(busi, gid)
    assert call_summary(calls) == [("TransOut", "01", "action"), ("TransIn", "02", "action")]
    assert_action_call(calls[0], "TransOut", gid, "01")
    assert_action_call(calls[1], "TransIn", gid, "02")
    assert calls[0].time <= calls[1].time

    assert branch_rows(dtm_server.query(gid)) == [("01", "action", "succeed"), ("02", "action", "succeed")]


def test_msg_prepare_then_submit_needs_no_check_back(dtm, dtm_server, busi):
    gid = new_gid("msg", "prep-submit")
    m = transfer_msg(dtm, busi, gid)
    m.prepare(busi.url("QueryPrepared"))

    q = dtm_server.query(gid)
    assert q["transaction"]["status"] == "prepared", q
    assert q["transaction"].get("query_prepared") == busi.url("QueryPrepared"), q
    # branch rows are generated at prepare time (dtm-spec §2.6), nothing is called yet
    assert branch_rows(q) == [("01", "action", "prepared"), ("02", "action", "prepared")]
    assert busi.calls(gid) == []

    m.submit()
    q = dtm_server.wait_for_status(gid, timeout=15)
    assert q["transaction"]["status"] == "succeed", q
    calls = settle_and_get_calls(busi, gid)
    assert call_summary(calls) == [("TransOut", "01", "action"), ("TransIn", "02", "action")]
    assert_action_call(calls[0], "TransOut", gid, "01")
    assert_action_call(calls[1], "TransIn", gid, "02")


def test_msg_check_back_success_submits_the_msg(dtm, dtm_server, busi):
    gid = new_gid("msg", "qp-ok")
    created = prepare_for_check_back(dtm, busi, gid)
    assert dtm_server.query(gid)["transaction"]["status"] == "prepared"

    q = drive_check_back(dtm, dtm_server, busi, gid, created)
    assert q["transaction"]["status"] == "succeed", q

    calls = settle_and_get_calls(busi, gid)
    assert call_summary(calls) == [
        ("QueryPrepared", "00", "msg"),
        ("TransOut", "01", "action"),
        ("TransIn", "02", "action"),
    ]
    assert_check_back_call(calls[0], gid)
    # not asked before the msg is older than its timeout (1 s slack: second-granularity create_time)
    assert calls[0].time - created >= CHECK_BACK_TIMEOUT - 1.0, calls[0].time - created
    assert_action_call(calls[1], "TransOut", gid, "01")
    assert_action_call(calls[2], "TransIn", gid, "02")
    assert branch_rows(dtm_server.query(gid)) == [("01", "action", "succeed"), ("02", "action", "succeed")]


def test_msg_check_back_failure_fails_the_msg(dtm, dtm_server, busi):
    gid = new_gid("msg", "qp-fail")
    busi.on("QueryPrepared", (409, {"dtm_result": "FAILURE"}), gid=gid)
    created = prepare_for_check_back(dtm, busi, gid)

    q = drive_check_back(dtm, dtm_server, busi, gid, created)
    assert q["transaction"]["status"] == "failed", q

    calls = settle_and_get_calls(busi, gid)
    assert call_summary(calls) == [("QueryPrepared", "00", "msg")], "no action may run: %s" % calls
    assert_check_back_call(calls[0], gid)
    assert branch_rows(dtm_server.query(gid)) == [("01", "action", "prepared"), ("02", "action", "prepared")]


def test_msg_check_back_ongoing_is_asked_again(dtm, dtm_server, busi):
    """425 ONGOING keeps the msg prepared; it is asked again after the reset interval, which for a
    timeout_to_fail below RetryInterval is timeout_to_fail itself (dtm-spec §8.3, §9.3)."""
    gid = new_gid("msg", "qp-ongoing")
    busi.on("QueryPrepared", (425, {"dtm_result": "ONGOING"}), (200, {"dtm_result": "SUCCESS"}), gid=gid)
    created = prepare_for_check_back(dtm, busi, gid)

    q = drive_check_back(dtm, dtm_server, busi, gid, created)
    assert q["transaction"]["status"] == "succeed", q
    calls = settle_and_get_calls(busi, gid)
    assert call_summary(calls) == [
        ("QueryPrepared", "00", "msg"),
        ("QueryPrepared", "00", "msg"),
        ("TransOut", "01", "action"),
        ("TransIn", "02", "action"),
    ]
    assert_check_back_call(calls[0], gid)
    assert_check_back_call(calls[1], gid)


def test_msg_do_and_submit_success(dtm, dtm_server, busi):
    gid = new_gid("msg", "do-ok")
    seen = []
    transfer_msg(dtm, busi, gid).do_and_submit(busi.url("QueryPrepared"), lambda bb: seen.append(bb))
    # the local transaction ran between prepare and submit, with the check-back barrier identity 00/msg
    assert [(b.gid, b.trans_type, b.branch_id, b.op) for b in seen] == [(gid, "msg", "00", "msg")]

    q = dtm_server.wait_for_status(gid, timeout=15)
    assert q["transaction"]["status"] == "succeed", q
    calls = settle_and_get_calls(busi, gid)
    assert call_summary(calls) == [("TransOut", "01", "action"), ("TransIn", "02", "action")]


def test_msg_do_and_submit_business_failure_aborts(dtm, dtm_server, busi):
    """busi_call raising DTMFailureError makes dtmcli POST /abort: a prepared msg goes straight to failed
    (dtm-spec §4.5) and no action is ever called."""
    gid = new_gid("msg", "do-fail")

    def busi_call(bb):
        assert dtm_server.query(gid)["transaction"]["status"] == "prepared"
        raise utils.DTMFailureError("insufficient balance")

    with pytest.raises(utils.DTMFailureError):
        transfer_msg(dtm, busi, gid).do_and_submit(busi.url("QueryPrepared"), busi_call)

    q = dtm_server.query(gid)  # abort answers after the status change
    assert q["transaction"]["status"] == "failed", q
    calls = settle_and_get_calls(busi, gid)
    assert calls == [], calls
    assert dtm_server.query(gid)["transaction"]["status"] == "failed"


# -- topics (dtm-spec §2.6, §4.13, §10) ------------------------------------------------------------------------


def subscribe(dtm, topic, url, remark=""):
    return requests.get(dtm + "/subscribe", params={"topic": topic, "url": url, "remark": remark}, timeout=5)


def test_msg_topic_step_calls_every_subscriber(dtm, dtm_server, busi):
    topic = "py-topic-%s" % uuid.uuid4().hex[:12]
    for name in ("TopicSubA", "TopicSubB"):
        r = subscribe(dtm, topic, busi.url(name), remark="interop " + name)
        assert r.status_code == 200, r.text
        assert r.json().get("dtm_result") == "SUCCESS", r.text
    # the same url twice -> plain error, 500 "this url exists"
    r = subscribe(dtm, topic, busi.url("TopicSubA"))
    assert r.status_code == 500, r.text
    assert "this url exists" in r.text, r.text

    gid = new_gid("msg", "topic")
    # dtmcli has no add_topic; this is the wire form of the Go client's AddTopic(topic, body)
    msg.Msg(dtm, gid).add(AMOUNT, "topic://" + topic).add(AMOUNT, busi.url("TransIn")).submit()

    q = dtm_server.wait_for_status(gid, timeout=15)
    assert q["transaction"]["status"] == "succeed", q
    # step 1 expands into one branch per subscriber, "01-01", "01-02"; step 2 keeps "02"
    assert [(b.get("branch_id"), b.get("op"), b.get("url"), b.get("status")) for b in q["branches"]] == [
        ("01-01", "action", busi.url("TopicSubA"), "succeed"),
        ("01-02", "action", busi.url("TopicSubB"), "succeed"),
        ("02", "action", busi.url("TransIn"), "succeed"),
    ]
    calls = settle_and_get_calls(busi, gid)
    assert call_summary(calls) == [
        ("TopicSubA", "01-01", "action"),
        ("TopicSubB", "01-02", "action"),
        ("TransIn", "02", "action"),
    ]
    assert_action_call(calls[0], "TopicSubA", gid, "01-01")
    assert_action_call(calls[1], "TopicSubB", gid, "01-02")
    assert_action_call(calls[2], "TransIn", gid, "02")


def test_msg_with_single_subscriber_topic_keeps_plain_branch_id(dtm, dtm_server, busi):
    topic = "py-topic1-%s" % uuid.uuid4().hex[:12]
    assert subscribe(dtm, topic, busi.url("OnlySub")).status_code == 200
    gid = new_gid("msg", "topic1")
    msg.Msg(dtm, gid).add(AMOUNT, "topic://" + topic).submit()
    q = dtm_server.wait_for_status(gid, timeout=15)
    assert q["transaction"]["status"] == "succeed", q
    calls = settle_and_get_calls(busi, gid)
    assert call_summary(calls) == [("OnlySub", "01", "action")]
    assert_action_call(calls[0], "OnlySub", gid, "01")


def test_msg_with_unknown_topic_is_rejected(dtm, dtm_server, busi):
    gid = new_gid("msg", "topic-none")
    m = msg.Msg(dtm, gid).add(AMOUNT, "topic://py-no-such-topic-%s" % uuid.uuid4().hex[:12])
    # 500 {"message":"topic not found"} -> dtmcli raises a plain Exception("bad result") (not DTMFailureError)
    with pytest.raises(Exception) as info:
        m.submit()
    assert not isinstance(info.value, utils.DTMFailureError), info.value
    r = requests.post(dtm + "/submit", json=m.trans_base.__dict__, timeout=8)
    assert r.status_code == 500, r.text
    assert "topic not found" in r.text, r.text
    assert dtm_server.query(gid)["transaction"] is None
