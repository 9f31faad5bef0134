"""gRPC and HTTP are two doors to the same coordinator (dtm-spec §4.9, §6.1, §7.1).

* A saga submitted over gRPC is visible over HTTP `GET /api/dtmsvr/query?gid=` with protocol "grpc".
* A saga submitted over HTTP with "protocol":"grpc" and gRPC branch URLs is executed through the gRPC branches.
"""

import base64
import json

import requests

import grpc_harness as h


def test_grpc_submitted_saga_is_visible_over_http_query(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = h.new_gid("x-query")
    steps = h.busi_saga_steps(grpc_busi)
    payloads = h.busi_payloads(pb)
    dtm_grpc.Submit(h.saga_request(pb, gid, steps, payloads, request_timeout=5))

    q = dtm_server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    trans = q["transaction"]
    assert trans["gid"] == gid
    assert trans["trans_type"] == "saga"
    assert trans["status"] == "succeed", q
    assert trans["protocol"] == "grpc"
    assert trans.get("finish_time"), trans
    assert not trans.get("rollback_reason"), trans
    # the options column is the JSON of the transaction options (dtm-spec §2.1, §2.3)
    assert json.loads(trans.get("options") or "{}").get("request_timeout") == 5, trans

    branches = q["branches"]
    assert h.branch_rows(q) == [
        ("01", "compensate", "prepared"),
        ("01", "action", "succeed"),
        ("02", "compensate", "prepared"),
        ("02", "action", "succeed"),
    ]
    assert [b["url"] for b in branches] == [steps[0]["compensate"], steps[0]["action"],
                                            steps[1]["compensate"], steps[1]["action"]]
    assert all(b["gid"] == gid for b in branches), branches
    # bin_data is base64 of the BinPayloads bytes (both rows of a step carry the step's payload)
    assert [base64.b64decode(b.get("bin_data") or "") for b in branches] == [payloads[0], payloads[0],
                                                                             payloads[1], payloads[1]]

    # the same transaction through /all?gid=
    r = requests.get(dtm_server.api + "/all", params={"gid": gid}, timeout=5)
    assert r.status_code == 200, r.text
    listed = r.json()["transactions"]
    assert [(t["gid"], t["protocol"], t["status"]) for t in listed] == [(gid, "grpc", "succeed")]


def test_grpc_submitted_failing_saga_over_http_query(dtm_server, dtm_grpc, pb, grpc_busi):
    gid = h.new_gid("x-query-fail")
    grpc_busi.on("TransIn", h.aborted("reason:insufficient balance"), gid=gid)
    dtm_grpc.Submit(h.saga_request(pb, gid, h.busi_saga_steps(grpc_busi), h.busi_payloads(pb)))
    q = dtm_server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    trans = q["transaction"]
    assert (trans["status"], trans["protocol"]) == ("failed", "grpc"), q
    assert trans.get("rollback_time"), trans
    # `url:<url> return failed: <grpc message> FAILURE` (dtm-spec §8.2 step 8)
    reason = trans.get("rollback_reason") or ""
    assert grpc_busi.url("/busi.Busi/TransIn") in reason, reason
    assert "reason:insufficient balance" in reason, reason
    assert h.branch_rows(q) == [
        ("01", "compensate", "succeed"),
        ("01", "action", "succeed"),
        ("02", "compensate", "succeed"),
        ("02", "action", "failed"),
    ]


def _http_submit(dtm_server, body):
    r = requests.post(dtm_server.api + "/submit", json=body, timeout=10)
    assert r.status_code == 200, "HTTP submit -> %d %s" % (r.status_code, r.text)
    assert r.json().get("dtm_result") == "SUCCESS", r.text


def test_http_submitted_saga_runs_through_grpc_branches(dtm_server, pb, grpc_busi):
    gid = h.new_gid("x-http")
    steps = h.busi_saga_steps(grpc_busi)
    payloads = h.busi_payloads(pb)
    # HTTP payloads are strings; these protobuf bytes are ASCII, so the string is the exact message bytes
    texts = [p.decode("ascii") for p in payloads]
    _http_submit(dtm_server, {
        "gid": gid, "trans_type": "saga", "protocol": "grpc", "steps": steps, "payloads": texts,
        "branch_headers": {"test_header": "from-http"}, "concurrent": False,
    })

    q = dtm_server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == "succeed", q
    assert q["transaction"]["protocol"] == "grpc", q
    h.settle()

    calls = grpc_busi.calls(gid)
    assert h.summaries(calls) == [("/busi.Busi/TransOut", "01", "action"), ("/busi.Busi/TransIn", "02", "action")]
    assert [c.request for c in calls] == payloads
    h.assert_dtm_metadata(calls[0], gid, "saga", "01", "action", extra={"test_header": "from-http"})
    h.assert_dtm_metadata(calls[1], gid, "saga", "02", "action", extra={"test_header": "from-http"})


def test_http_submitted_grpc_saga_failure_compensates_through_grpc(dtm_server, pb, grpc_busi):
    gid = h.new_gid("x-http-fail")
    grpc_busi.on("TransIn", h.aborted("FAILURE"), gid=gid)
    payloads = h.busi_payloads(pb)
    _http_submit(dtm_server, {
        "gid": gid, "trans_type": "saga", "protocol": "grpc", "steps": h.busi_saga_steps(grpc_busi),
        "payloads": [p.decode("ascii") for p in payloads],
    })
    q = dtm_server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == "failed", q
    h.settle()
    calls = grpc_busi.calls(gid)
    assert h.summaries(calls) == h.FAILED_BUSI_SAGA_CALLS
    assert [c.request for c in calls] == [payloads[0], payloads[1], payloads[1], payloads[0]]
