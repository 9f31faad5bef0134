"""Every method of the `dtmgimp.Dtm` service, called with grpcio and stubs generated from <repo>/Protos.

Expected behaviour: dtm-spec §6 (messages, field numbers, method semantics), §2.6 (branch rows), §8.2/§8.4 (saga,
tcc), §8.6 (workflow), §10 (topics), §15.2 (what Go's dtmgrpc sends) and Appendix A.4.
"""

import base64
import json

import grpc
import pytest
import requests

import grpc_harness as h


def _query_kv(dtm_server, cat, key):
    r = requests.get(dtm_server.api + "/queryKV", params={"cat": cat, "key": key}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["kv"]


# ----------------------------------------------------------------------------------------------------------------
# NewGid


def test_new_gid(dtm_grpc, pb):
    reply = dtm_grpc.NewGid(pb.Empty())
    assert isinstance(reply, pb.DtmGidReply)
    gid = reply.Gid
    # a shortuuid: 22 characters of base57 (dtm-spec §4.2 / §6.2)
    assert len(gid) == 22, repr(gid)
    assert set(gid) <= h.GID_ALPHABET, repr(gid)
    others = {dtm_grpc.NewGid(pb.Empty()).Gid for _ in range(5)}
    assert gid not in others and len(others) == 5, (gid, others)


# ----------------------------------------------------------------------------------------------------------------
# Submit (saga)


def test_submit_saga_with_grpc_branches(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = h.new_gid("saga")
    steps = h.busi_saga_steps(grpc_busi)
    payloads = h.busi_payloads(pb)
    reply = dtm_grpc.Submit(h.saga_request(pb, gid, steps, payloads))
    assert isinstance(reply, pb.Empty)

    q = dtm_server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == "succeed", q
    h.settle()

    calls = grpc_busi.calls(gid)
    assert h.summaries(calls) == [("/busi.Busi/TransOut", "01", "action"), ("/busi.Busi/TransIn", "02", "action")]
    # the request bytes are exactly the BinPayloads, forwarded unchanged
    assert [c.request for c in calls] == payloads
    # deadline = the server's RequestTimeout (3 s) when the transaction has none (dtm-spec §7.3)
    h.assert_dtm_metadata(calls[0], gid, "saga", "01", "action", max_deadline=3)
    h.assert_dtm_metadata(calls[1], gid, "saga", "02", "action", max_deadline=3)
    assert calls[0].time <= calls[1].time

    q = dtm_server.query(gid)
    assert q["transaction"]["protocol"] == "grpc", q
    assert h.branch_rows(q) == [
        ("01", "compensate", "prepared"),
        ("01", "action", "succeed"),
        ("02", "compensate", "prepared"),
        ("02", "action", "succeed"),
    ]


# ----------------------------------------------------------------------------------------------------------------
# TCC: Prepare + RegisterBranch + Submit / Abort


def _register_tcc(dtm_grpc, pb, svc, gid):
    """Two TCC branches as dtmgrpc registers them (dtm-spec §15.2); returns their BusiPayloads."""
    out = pb.ReqGrpc(Amount=30, TransOutResult="SUCCESS").SerializeToString()
    into = pb.ReqGrpc(Amount=30, TransInResult="SUCCESS").SerializeToString()
    for branch_id, name, payload in (("01", "TransOut", out), ("02", "TransIn", into)):
        reply = dtm_grpc.RegisterBranch(pb.DtmBranchRequest(
            Gid=gid, TransType="tcc", BranchID=branch_id, Op="try",  # Op is ignored by DTM (dtm-spec §6.2)
            Data={"confirm": svc.url("/busi.Busi/%sConfirm" % name),
                  "cancel": svc.url("/busi.Busi/%sRevert" % name)},
            BusiPayload=payload))
        assert isinstance(reply, pb.Empty)
    return out, into


def _prepare_tcc(dtm_server, dtm_grpc, pb, gid):
    dtm_grpc.Prepare(pb.DtmRequest(Gid=gid, TransType="tcc", TransOptions=h.trans_options(pb), Steps="null"))
    q = dtm_server.query(gid)
    assert q["transaction"] is not None, q
    assert q["transaction"]["status"] == "prepared", q
    assert q["transaction"]["trans_type"] == "tcc", q
    assert q["transaction"]["protocol"] == "grpc", q
    assert q["branches"] == [], q


@pytest.mark.parametrize(
    "second_phase",
    [
        # submit: confirm runs from the last registered branch to the first (dtm-spec §8.4)
        dict(abort_reason=None, status="succeed", op="confirm", names=["TransInConfirm", "TransOutConfirm"],
             rows=["prepared", "succeed", "prepared", "succeed"]),
        # abort with the client's reason: cancel, last registered first, and the reason is kept
        dict(abort_reason="try of branch 02 failed: insufficient balance", status="failed", op="cancel",
             names=["TransInRevert", "TransOutRevert"], rows=["succeed", "prepared", "succeed", "prepared"]),
    ],
    ids=["submit-confirms", "abort-cancels"],
)
def test_tcc_prepare_register_then_second_phase_in_reverse_order(dtm_server, dtm_grpc, pb, grpc_busi, second_phase):
    gid = h.new_gid("tcc-" + second_phase["op"])
    _prepare_tcc(dtm_server, dtm_grpc, pb, gid)
    out, into = _register_tcc(dtm_grpc, pb, grpc_busi, gid)

    q = dtm_server.query(gid)
    assert h.branch_rows(q) == [
        ("01", "cancel", "prepared"),
        ("01", "confirm", "prepared"),
        ("02", "cancel", "prepared"),
        ("02", "confirm", "prepared"),
    ]
    assert [base64.b64decode(b.get("bin_data") or "") for b in q["branches"]] == [out, out, into, into]
    assert grpc_busi.calls(gid) == []  # the server never calls try

    reason = second_phase["abort_reason"]
    if reason is None:
        dtm_grpc.Submit(pb.DtmRequest(Gid=gid, TransType="tcc", TransOptions=h.trans_options(pb)))
    else:
        dtm_grpc.Abort(pb.DtmRequest(Gid=gid, TransType="tcc", RollbackReason=reason, TransOptions=h.trans_options(pb)))
    q = dtm_server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == second_phase["status"], q
    if reason is not None:
        assert q["transaction"].get("rollback_reason") == reason, q
    h.settle()

    calls = grpc_busi.calls(gid)
    op = second_phase["op"]
    assert h.summaries(calls) == [("/busi.Busi/" + second_phase["names"][0], "02", op), ("/busi.Busi/" + second_phase["names"][1], "01", op)]
    assert [c.request for c in calls] == [into, out]
    h.assert_dtm_metadata(calls[0], gid, "tcc", "02", op)
    h.assert_dtm_metadata(calls[1], gid, "tcc", "01", op)
    assert h.branch_rows(dtm_server.query(gid)) == list(zip(["01", "01", "02", "02"], ["cancel", "confirm"] * 2, second_phase["rows"]))


def test_register_branch_needs_a_prepared_transaction(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = h.new_gid("tcc-noprep")
    h.expect_rpc_error(
        dtm_grpc.RegisterBranch,
        pb.DtmBranchRequest(Gid=gid, TransType="tcc", BranchID="01",
                            Data={"confirm": grpc_busi.url("/busi.Busi/TransOutConfirm"),
                                  "cancel": grpc_busi.url("/busi.Busi/TransOutRevert")},
                            BusiPayload=b"\x08\x1e"),
        codes=grpc.StatusCode.ABORTED,
        contains=["no trans with gid: %s status: prepared found" % gid],
    )
    q = dtm_server.query(gid)
    assert q["transaction"] is None and q["branches"] == [], q


# ----------------------------------------------------------------------------------------------------------------
# PrepareWorkflow


def test_prepare_workflow_new_then_stored_progress(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = h.new_gid("wf")
    custom = json.dumps({"data": base64.b64encode(b"\x08\x1e").decode(), "name": "wf-interop"},
                        separators=(",", ":"))
    request = pb.DtmRequest(Gid=gid, TransType="workflow", CustomedData=custom, Steps="null",
                            QueryPrepared=grpc_busi.url("/workflow.Workflow/Execute"),
                            TransOptions=h.trans_options(pb))

    first = dtm_grpc.PrepareWorkflow(request)
    assert isinstance(first, pb.DtmProgressesReply)
    assert first.Transaction.Gid == gid
    assert first.Transaction.Status == "prepared"
    assert first.Transaction.RollbackReason == ""
    assert list(first.Progresses) == []

    q = dtm_server.query(gid)
    assert q["transaction"]["trans_type"] == "workflow", q
    assert q["transaction"]["protocol"] == "grpc", q
    assert q["transaction"]["status"] == "prepared", q

    # a step result, recorded as the Go workflow SDK does (Data {"op","status"}, BusiPayload = result bytes)
    result_bytes = b"\x0a\x0bstep-result"
    dtm_grpc.RegisterBranch(pb.DtmBranchRequest(
        Gid=gid, TransType="workflow", BranchID="01", Op="action",
        Data={"op": "action", "status": "succeed"}, BusiPayload=result_bytes))

    again = dtm_grpc.PrepareWorkflow(request)
    assert again.Transaction.Gid == gid
    assert again.Transaction.Status == "prepared"
    assert len(again.Progresses) == 1, again
    p = again.Progresses[0]
    assert (p.BranchID, p.Op, p.Status, p.BinData) == ("01", "action", "succeed", result_bytes)

    q = dtm_server.query(gid)
    assert h.branch_rows(q) == [("01", "action", "succeed")]
    assert base64.b64decode(q["branches"][0].get("bin_data") or "") == result_bytes

    # finish it as the SDK does, so the cron loop has nothing to resume; the stored status is then reported
    dtm_grpc.Submit(pb.DtmRequest(Gid=gid, TransType="workflow", TransOptions=h.trans_options(pb),
                                  ReqExtra={"status": "succeed", "rollback_reason": "",
                                            "result": base64.b64encode(b"done").decode()}))
    assert dtm_server.query(gid)["transaction"]["status"] == "succeed"
    done = dtm_grpc.PrepareWorkflow(request)
    assert done.Transaction.Status == "succeed"
    assert [(x.BranchID, x.Op, x.Status, x.BinData) for x in done.Progresses] == [
        ("01", "action", "succeed", result_bytes)]
    # the workflow was finished before its first resume was due (RetryInterval 10 s): no callback
    assert grpc_busi.calls(gid) == []


# ----------------------------------------------------------------------------------------------------------------
# Topics


def test_subscribe_unsubscribe_delete_topic(dtm_server, dtm_grpc, pb, grpc_busi):
    topic = h.new_gid("topic")
    url1 = grpc_busi.url("/busi.Busi/TransOut")
    url2 = grpc_busi.url("/busi.Busi/TransIn")

    dtm_grpc.Subscribe(pb.DtmTopicRequest(Topic=topic, URL=url1, Remark="first"))
    h.expect_rpc_error(dtm_grpc.Subscribe, pb.DtmTopicRequest(Topic=topic, URL=url1, Remark="again"),
                       codes=grpc.StatusCode.UNKNOWN, contains="this url exists")
    dtm_grpc.Subscribe(pb.DtmTopicRequest(Topic=topic, URL=url2, Remark="second"))

    kv = _query_kv(dtm_server, "topics", topic)
    assert len(kv) == 1, kv
    assert json.loads(kv[0]["v"]) == [{"url": url1, "remark": "first"}, {"url": url2, "remark": "second"}]

    dtm_grpc.Unsubscribe(pb.DtmTopicRequest(Topic=topic, URL=url1))
    h.expect_rpc_error(dtm_grpc.Unsubscribe, pb.DtmTopicRequest(Topic=topic, URL=url1),
                       codes=grpc.StatusCode.UNKNOWN, contains="no such an url")
    kv = _query_kv(dtm_server, "topics", topic)
    assert json.loads(kv[0]["v"]) == [{"url": url2, "remark": "second"}]

    dtm_grpc.DeleteTopic(pb.DtmTopicRequest(Topic=topic))
    assert _query_kv(dtm_server, "topics", topic) == []
    h.expect_rpc_error(dtm_grpc.Unsubscribe, pb.DtmTopicRequest(Topic=topic, URL=url2),
                       codes=grpc.StatusCode.UNKNOWN, contains="no such a topic")


def test_topic_argument_errors_are_unknown(dtm_grpc, pb, grpc_busi):
    url = grpc_busi.url("/busi.Busi/TransOut")
    h.expect_rpc_error(dtm_grpc.Subscribe, pb.DtmTopicRequest(Topic="", URL=url),
                       codes=grpc.StatusCode.UNKNOWN, contains="empty topic")
    h.expect_rpc_error(dtm_grpc.Subscribe, pb.DtmTopicRequest(Topic=h.new_gid("topic"), URL=""),
                       codes=grpc.StatusCode.UNKNOWN, contains="empty url")
    h.expect_rpc_error(dtm_grpc.Unsubscribe, pb.DtmTopicRequest(Topic="", URL=url),
                       codes=grpc.StatusCode.UNKNOWN, contains="empty topic")


def test_delete_missing_topic_is_unknown_storage_not_found(dtm_grpc, pb):
    # dtm-spec §6.2 / §10: DeleteTopic of a missing topic is a plain error `storage: NotFound` -> UNKNOWN
    h.expect_rpc_error(dtm_grpc.DeleteTopic, pb.DtmTopicRequest(Topic=h.new_gid("no-topic")),
                       codes=grpc.StatusCode.UNKNOWN, contains="NotFound")


def test_msg_to_subscribed_topic_calls_every_subscriber(dtm_server, dtm_grpc, pb, grpc_busi):
    topic = h.new_gid("topic-msg")
    url1 = grpc_busi.url("/busi.Busi/TransOut")
    url2 = grpc_busi.url("/busi.Busi/TransIn")
    dtm_grpc.Subscribe(pb.DtmTopicRequest(Topic=topic, URL=url1))
    dtm_grpc.Subscribe(pb.DtmTopicRequest(Topic=topic, URL=url2))

    gid = h.new_gid("msg")
    payload = pb.ReqGrpc(Amount=30).SerializeToString()
    # msg submit without prepare; one step `topic://<name>` expands to one branch per subscriber (dtm-spec §2.6)
    dtm_grpc.Submit(pb.DtmRequest(Gid=gid, TransType="msg", Steps=h.steps_json([{"action": "topic://" + topic}]),
                                  BinPayloads=[payload], TransOptions=h.trans_options(pb)))
    q = dtm_server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == "succeed", q
    h.settle()

    calls = grpc_busi.calls(gid)
    assert h.summaries(calls) == [("/busi.Busi/TransOut", "01-01", "action"),
                                  ("/busi.Busi/TransIn", "01-02", "action")]
    assert [c.request for c in calls] == [payload, payload]
    h.assert_dtm_metadata(calls[0], gid, "msg", "01-01", "action")
    h.assert_dtm_metadata(calls[1], gid, "msg", "01-02", "action")
    assert [(b["branch_id"], b["url"]) for b in dtm_server.query(gid)["branches"]] == [("01-01", url1),
                                                                                       ("01-02", url2)]
    dtm_grpc.DeleteTopic(pb.DtmTopicRequest(Topic=topic))
