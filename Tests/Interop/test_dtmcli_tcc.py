"""TCC global transactions driven through the official Python client (PyPI `dtmcli` 1.7.7.0).

dtmcli is used exactly as its users use it (`dtmcli/tcc.py`):

    from dtmcli import tcc
    def busi(t):                                    # t is a dtmcli.tcc.Tcc
        t.call_branch(body, try_url, confirm_url, cancel_url)
        ...
    gid = tcc.tcc_global_transaction(dtm, gid, busi)

What dtmcli 1.7.7.0 sends:
  * POST <dtm>/prepare and POST <dtm>/submit with exactly {"gid", "trans_type": "tcc"} (no options, so no
    wait_result / timeout_to_fail can be set through this client);
  * per `call_branch`: POST <dtm>/registerBranch {"gid", "branch_id" ("01", "02", ...), "trans_type": "tcc",
    "status": "prepared", "data": json.dumps(body), "confirm", "cancel"}, then the client itself POSTs the try URL
    with json=body and query gid, trans_type=tcc, branch_id, op=try (no `dtm` parameter);
  * if anything in the callback raises (a try answering 409 raises utils.DTMFailureError), it prints the traceback,
    POSTs <dtm>/abort with the same {"gid", "trans_type"} (no rollback_reason) and returns "" instead of the gid.

Expected server behaviour: dtm-spec §4.3-4.7, §7.2, §8.4 and Appendix A.3: confirm (after submit) or cancel (after
abort) is called for every registered branch, last registered first, with query exactly gid, trans_type=tcc,
branch_id, op; POST with the registered data as body when that data is non-empty, GET otherwise.
"""

import json
import time

import pytest
import requests
from dtmcli import tcc, utils

from dtmcli_support import AMOUNT, INSUFFICIENT, branch_rows, call_summary, new_gid, settle_and_get_calls


def quick_start_tcc(busi, body=AMOUNT):
    """The DTM quick-start TCC callback: TransOut then TransIn, each with its Confirm and Revert (cancel) URL."""

    def callback(t):
        t.call_branch(body, busi.url("TransOut"), busi.url("TransOutConfirm"), busi.url("TransOutRevert"))
        t.call_branch(body, busi.url("TransIn"), busi.url("TransInConfirm"), busi.url("TransInRevert"))

    return callback


def assert_try_call(call, name, gid, branch_id, body=AMOUNT):
    """The try call made by dtmcli itself (not by the server)."""
    assert call.method == "POST", call
    assert call.path == "/api/busi/" + name, call
    assert call.query == {"gid": gid, "trans_type": "tcc", "branch_id": branch_id, "op": "try"}, call
    assert call.json() == body, call


def assert_phase2_call(call, name, gid, branch_id, op, body=AMOUNT):
    """A confirm / cancel call made by the server (dtm-spec §7.2): non-empty registered data -> POST with it."""
    assert call.method == "POST", call
    assert call.path == "/api/busi/" + name, call
    assert call.query == {"gid": gid, "trans_type": "tcc", "branch_id": branch_id, "op": op}, call
    assert all(len(v) == 1 for v in call.query_multi.values()), call.query_multi
    assert call.headers.get("content-type", "").lower().startswith("application/json"), call.headers
    # registerBranch `data` is json.dumps(body) -> '{"amount": 30}' (with a space), forwarded byte for byte
    assert call.body == json.dumps(body), call


# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outcome",
    [
        # both tries succeed: the server confirms, last registered first
        dict(tag="ok", fail_try=False, status="succeed", phase2=[("TransInConfirm", "02", "confirm"), ("TransOutConfirm", "01", "confirm")],
             rows=["prepared", "succeed", "prepared", "succeed"]),
        # the second try fails: dtmcli aborts; cancel is called for every registered branch, including 02 whose try
        # failed (dtm-spec §8.4), last registered first
        dict(tag="fail", fail_try=True, status="failed", phase2=[("TransInRevert", "02", "cancel"), ("TransOutRevert", "01", "cancel")],
             rows=["succeed", "prepared", "succeed", "prepared"]),
    ],
    ids=["confirmed", "cancelled"],
)
def test_tcc_quick_start_second_phase_runs_last_registered_first(dtm, dtm_server, busi, outcome):
    gid = new_gid("tcc", outcome["tag"])
    if outcome["fail_try"]:
        busi.on("TransIn", (409, INSUFFICIENT), gid=gid, op="try")
    result = tcc.tcc_global_transaction(dtm, gid, quick_start_tcc(busi))
    # after a failed try dtmcli raised DTMFailureError inside, POSTed /abort and returned ""
    assert result == ("" if outcome["fail_try"] else gid), "tcc_global_transaction returned %r" % result

    q = dtm_server.wait_for_status(gid, timeout=15)
    trans = q["transaction"]
    assert trans["status"] == outcome["status"], q
    assert trans["gid"] == gid
    assert trans["trans_type"] == "tcc"
    # dtmcli's abort body is only {"gid", "trans_type"}: there is no rollback_reason to record, and the server must not
    # invent one for a client abort (dtm-spec §4.5 stores it only if non-empty)
    assert not trans.get("rollback_reason"), trans

    calls = settle_and_get_calls(busi, gid)
    assert call_summary(calls) == [("TransOut", "01", "try"), ("TransIn", "02", "try")] + outcome["phase2"]
    assert_try_call(calls[0], "TransOut", gid, "01")
    assert_try_call(calls[1], "TransIn", gid, "02")
    for call, (name, branch_id, op) in zip(calls[2:], outcome["phase2"]):
        assert_phase2_call(call, name, gid, branch_id, op)

    q = dtm_server.query(gid)
    assert q["transaction"]["status"] == outcome["status"]
    assert branch_rows(q) == list(zip(["01", "01", "02", "02"], ["cancel", "confirm"] * 2, outcome["rows"]))
    assert [b.get("url") for b in q["branches"]] == [
        busi.url("TransOutRevert"), busi.url("TransOutConfirm"), busi.url("TransInRevert"), busi.url("TransInConfirm"),
    ], q["branches"]


def test_tcc_branches_registered_after_submit_are_rejected(dtm, dtm_server, busi):
    """registerBranch needs the global trans to be `prepared` (dtm-spec §4.7): once dtmcli has submitted, a late
    call_branch gets 409 and dtmcli raises DTMFailureError before calling the try URL."""
    gid = new_gid("tcc", "late")
    assert tcc.tcc_global_transaction(dtm, gid, quick_start_tcc(busi)) == gid
    q = dtm_server.wait_for_status(gid, timeout=15)
    assert q["transaction"]["status"] == "succeed", q

    late = tcc.Tcc(dtm, gid)  # what a user's late callback would hold
    with pytest.raises(utils.DTMFailureError):
        late.call_branch(AMOUNT, busi.url("Late"), busi.url("LateConfirm"), busi.url("LateRevert"))
    calls = settle_and_get_calls(busi, gid)
    assert "Late" not in [c.name for c in calls], calls
    assert len(dtm_server.query(gid)["branches"]) == 4


# -- the same protocol on the raw wire, for what dtmcli cannot express ----------------------------------------------


def post_dtm(dtm, op, body):
    r = requests.post("%s/%s" % (dtm, op), json=body, timeout=8)
    return r


def test_tcc_phase2_is_get_without_body_when_registered_data_is_empty(dtm, dtm_server, busi):
    """dtmcli always registers json.dumps(body) (never empty), so this registers one branch with data "" directly
    (as other SDKs may): its confirm must be a GET without body, the other one a POST (dtm-spec §7.2)."""
    gid = new_gid("tcc", "get")
    assert post_dtm(dtm, "prepare", {"gid": gid, "trans_type": "tcc"}).status_code == 200
    r = post_dtm(
        dtm,
        "registerBranch",
        {"gid": gid, "trans_type": "tcc", "branch_id": "01", "data": json.dumps(AMOUNT),
         "confirm": busi.url("TransOutConfirm"), "cancel": busi.url("TransOutRevert")},
    )
    assert r.status_code == 200, r.text
    r = post_dtm(
        dtm,
        "registerBranch",
        {"gid": gid, "trans_type": "tcc", "branch_id": "02", "data": "",
         "confirm": busi.url("TransInConfirm"), "cancel": busi.url("TransInRevert")},
    )
    assert r.status_code == 200, r.text
    r = post_dtm(dtm, "submit", {"gid": gid, "trans_type": "tcc"})
    assert r.status_code == 200, r.text

    q = dtm_server.wait_for_status(gid, timeout=15)
    assert q["transaction"]["status"] == "succeed", q
    calls = settle_and_get_calls(busi, gid)
    assert call_summary(calls) == [("TransInConfirm", "02", "confirm"), ("TransOutConfirm", "01", "confirm")]
    get_call, post_call = calls
    assert get_call.method == "GET", get_call
    assert get_call.body == "", get_call
    assert get_call.query == {"gid": gid, "trans_type": "tcc", "branch_id": "02", "op": "confirm"}, get_call
    assert_phase2_call(post_call, "TransOutConfirm", gid, "01", "confirm")


def test_tcc_prepared_without_submit_times_out_and_is_cancelled(dtm, dtm_server, busi):
    """A TCC whose client dies after the tries: once older than its timeout_to_fail the cron loop moves it to
    aborting with reason "Timeout after N seconds" and cancels every branch (dtm-spec §8.4 step 2, §9.5).
    dtmcli sends no options, so prepare is sent directly with timeout_to_fail = 2."""
    gid = new_gid("tcc", "timeout")
    created = time.monotonic()
    assert post_dtm(dtm, "prepare", {"gid": gid, "trans_type": "tcc", "timeout_to_fail": 2}).status_code == 200
    for bid, name in (("01", "TransOut"), ("02", "TransIn")):
        r = post_dtm(
            dtm,
            "registerBranch",
            {"gid": gid, "trans_type": "tcc", "branch_id": bid, "status": "prepared", "data": json.dumps(AMOUNT),
             "confirm": busi.url(name + "Confirm"), "cancel": busi.url(name + "Revert")},
        )
        assert r.status_code == 200, r.text

    assert dtm_server.query(gid)["transaction"]["status"] == "prepared"
    q = drive_until_not_prepared(dtm, dtm_server, gid, created, timeout_to_fail=2, timeout=15)
    q = dtm_server.wait_for_status(gid, timeout=10)
    trans = q["transaction"]
    assert trans["status"] == "failed", q
    assert trans.get("rollback_reason") == "Timeout after 2 seconds", trans

    calls = settle_and_get_calls(busi, gid)
    assert call_summary(calls) == [("TransInRevert", "02", "cancel"), ("TransOutRevert", "01", "cancel")]
    # the cancels are not issued before the transaction is older than its timeout (1 s slack: second-granularity
    # create_time)
    assert calls[0].time - created >= 1.0, calls[0].time - created
    assert branch_rows(q) == [
        ("01", "cancel", "succeed"),
        ("01", "confirm", "prepared"),
        ("02", "cancel", "succeed"),
        ("02", "confirm", "prepared"),
    ]


def drive_until_not_prepared(dtm, dtm_server, gid, created, timeout_to_fail, timeout):
    """Wait until `gid` leaves `prepared`; once it is older than its timeout, bring its cron round forward with
    POST /resetNextCronTime (every 2 s) so the test does not depend on the cron lease length."""
    deadline = time.monotonic() + timeout
    last_reset = 0.0
    while True:
        q = dtm_server.query(gid)
        if (q.get("transaction") or {}).get("status") != "prepared":
            return q
        now = time.monotonic()
        if now >= deadline:
            pytest.fail("transaction %s still prepared after %.0f s: %s" % (gid, timeout, json.dumps(q)))
        if now - created >= timeout_to_fail + 0.2 and now - last_reset >= 2.0:
            r = requests.post(dtm + "/resetNextCronTime", json={"gid": gid}, timeout=5)
            assert r.status_code == 200, "resetNextCronTime -> HTTP %d %s" % (r.status_code, r.text)
            last_reset = now
        time.sleep(0.1)
