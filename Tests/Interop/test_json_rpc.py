"""The JSON-RPC API (POST /api/json-rpc on the HTTP port), with plain `requests` (no dtmcli: it has no JSON-RPC
mode).  Requests are what DTM's Go client sends in JSON-RPC mode: {"jsonrpc":"2.0","id":"no-use","method":..,
"params":..}; the transaction objects are the ones of the HTTP API, with "protocol":"json-rpc".

Expected behaviour: dtm-spec §3.3, §5, §7.1, §7.4.  Every answer is an object {"jsonrpc":"2.0","id":<request id>,
"error":null|{"code","message"},"result":..} with HTTP 200, except for bodies that cannot be decoded (HTTP 400).
Codes: -32700 parse error, -32600 invalid request, -32601 method not found, -32603 internal, -32901 FAILURE.
"""

import json
import time
import uuid

import requests

AMOUNT = {"amount": 30}
SETTLE_SECONDS = 1.5


def new_gid(tag):
    return "py-jrpc-%s-%s" % (tag, uuid.uuid4().hex[:16])


def rpc_url(dtm_server):
    return dtm_server.base_url + "/api/json-rpc"


def rpc(dtm_server, method, params=None, rid="no-use", raw=None):
    """POST one JSON-RPC request; returns (HTTP status, decoded body)."""
    if raw is not None:
        r = requests.post(rpc_url(dtm_server), data=raw, headers={"Content-Type": "application/json"}, timeout=10)
    else:
        body = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            body["params"] = params
        r = requests.post(rpc_url(dtm_server), json=body, timeout=10)
    try:
        decoded = r.json()
    except ValueError:
        raise AssertionError("JSON-RPC answer is not JSON: HTTP %d %r" % (r.status_code, r.text[:500]))
    return r.status_code, decoded


def assert_ok(status, answer, rid="no-use"):
    assert status == 200, (status, answer)
    assert answer.get("jsonrpc") == "2.0", answer
    assert answer.get("id") == rid, answer
    assert answer.get("error") is None, answer


def assert_error(answer, code):
    err = answer.get("error")
    assert isinstance(err, dict), answer
    assert err.get("code") == code, answer
    assert isinstance(err.get("message"), str) and err["message"], answer
    return err["message"]


def saga_params(busi, gid):
    return {
        "gid": gid,
        "trans_type": "saga",
        "steps": [
            {"action": busi.url("TransOut"), "compensate": busi.url("TransOutRevert")},
            {"action": busi.url("TransIn"), "compensate": busi.url("TransInRevert")},
        ],
        "payloads": [json.dumps(AMOUNT), json.dumps(AMOUNT)],
        "protocol": "json-rpc",
        "concurrent": False,
    }


def call_summary(calls):
    return [(c.name, c.query.get("branch_id"), c.query.get("op")) for c in calls]


# ----------------------------------------------------------------------------------------------------------------


def test_new_gid_via_json_rpc(dtm_server):
    status, answer = rpc(dtm_server, "newGid")
    assert_ok(status, answer)
    gid = (answer.get("result") or {}).get("gid")
    assert isinstance(gid, str) and gid, answer
    status, other = rpc(dtm_server, "newGid")
    assert_ok(status, other)
    assert other["result"]["gid"] != gid


def test_saga_submitted_via_json_rpc_completes(dtm_server, busi):
    gid = new_gid("saga")
    status, answer = rpc(dtm_server, "submit", saga_params(busi, gid))
    assert_ok(status, answer)
    assert answer.get("result") is None, answer  # success of a non-newGid method: result null

    q = dtm_server.wait_for_status(gid, timeout=15)
    trans = q["transaction"]
    assert trans["status"] == "succeed", q
    assert trans["trans_type"] == "saga"
    assert trans.get("protocol") == "json-rpc", trans  # client-provided protocol is stored

    time.sleep(SETTLE_SECONDS)
    calls = busi.calls(gid)
    # the branch URLs contain no "method", so they are plain HTTP calls even for a json-rpc trans (dtm-spec §7.1)
    assert call_summary(calls) == [("TransOut", "01", "action"), ("TransIn", "02", "action")]
    for call, bid in zip(calls, ("01", "02")):
        assert call.method == "POST", call
        assert call.query == {"gid": gid, "trans_type": "saga", "branch_id": bid, "op": "action"}, call
        assert call.body == json.dumps(AMOUNT), call
    assert [(b["branch_id"], b["op"], b["status"]) for b in q["branches"]] == [
        ("01", "compensate", "prepared"),
        ("01", "action", "succeed"),
        ("02", "compensate", "prepared"),
        ("02", "action", "succeed"),
    ]


def test_json_rpc_branch_url_with_method_is_called_as_json_rpc(dtm_server, busi):
    """A json-rpc trans whose branch url contains `method` gets a JSON-RPC POST: params = the payload object plus
    gid, trans_type, branch_id, op; method = the url's ?method= value (dtm-spec §7.4)."""
    gid = new_gid("branch")
    params = {
        "gid": gid,
        "trans_type": "saga",
        "steps": [{"action": busi.url("JrpcBusi") + "?method=TransOut", "compensate": busi.url("JrpcBusi") + "?method=TransOutRevert"}],
        "payloads": [json.dumps(AMOUNT)],
        "protocol": "json-rpc",
    }
    status, answer = rpc(dtm_server, "submit", params)
    assert_ok(status, answer)
    q = dtm_server.wait_for_status(gid, timeout=15)
    assert q["transaction"]["status"] == "succeed", q

    time.sleep(SETTLE_SECONDS)
    calls = [c for c in busi.calls() if c.name == "JrpcBusi" and gid in c.body]
    assert len(calls) == 1, calls
    call = calls[0]
    assert call.method == "POST", call
    assert call.query.get("method") == "TransOut", call
    body = call.json()
    assert body.get("jsonrpc") == "2.0", body
    assert body.get("method") == "TransOut", body
    assert isinstance(body.get("id"), str) and body["id"], body
    assert body.get("params") == {"amount": 30, "gid": gid, "trans_type": "saga", "branch_id": "01", "op": "action"}, body


def test_unknown_method_is_method_not_found(dtm_server):
    status, answer = rpc(dtm_server, "noSuchMethod", {"gid": new_gid("unknown")})
    assert status == 200, (status, answer)
    assert answer.get("id") == "no-use", answer
    message = assert_error(answer, -32601)
    assert "noSuchMethod" in message, message


def test_query_is_not_a_json_rpc_method(dtm_server):
    # only newGid, prepare, submit, abort, registerBranch exist (dtm-spec §5)
    status, answer = rpc(dtm_server, "query", {"gid": new_gid("query")})
    assert status == 200, (status, answer)
    assert_error(answer, -32601)


def test_numeric_id_is_rejected_with_http_400(dtm_server):
    # `id` must be a JSON string; a number fails decoding (dtm-spec §5: parse error, gin has already written 400)
    status, answer = rpc(dtm_server, None, raw=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "newGid"}))
    assert status == 400, (status, answer)
    err = answer.get("error")
    assert isinstance(err, dict) and err.get("code") in (-32700, -32600), answer
    print("numeric id -> HTTP %d, error code %s, message %r" % (status, err.get("code"), err.get("message")))


def test_body_that_is_not_json_is_a_parse_error(dtm_server):
    status, answer = rpc(dtm_server, None, raw="{not json")
    assert status == 400, (status, answer)
    assert_error(answer, -32700)


def test_wrong_jsonrpc_version_is_invalid_request(dtm_server):
    status, answer = rpc(dtm_server, None, raw=json.dumps({"jsonrpc": "1.0", "id": "no-use", "method": "newGid"}))
    assert status == 200, (status, answer)
    assert_error(answer, -32600)


def test_submit_of_finished_gid_is_failure(dtm_server, busi):
    gid = new_gid("resubmit")
    status, answer = rpc(dtm_server, "submit", saga_params(busi, gid))
    assert_ok(status, answer)
    q = dtm_server.wait_for_status(gid, timeout=15)
    assert q["transaction"]["status"] == "succeed", q
    time.sleep(0.5)
    calls_before = len(busi.calls(gid))

    status, answer = rpc(dtm_server, "submit", saga_params(busi, gid))
    assert status == 200, (status, answer)
    assert answer.get("id") == "no-use", answer
    message = assert_error(answer, -32901)
    assert "FAILURE" in message and "succeed" in message, message

    time.sleep(SETTLE_SECONDS)
    assert len(busi.calls(gid)) == calls_before == 2
    assert dtm_server.query(gid)["transaction"]["status"] == "succeed"


def test_msg_prepare_and_abort_via_json_rpc(dtm_server, busi):
    gid = new_gid("msg-abort")
    params = {
        "gid": gid,
        "trans_type": "msg",
        "steps": [{"action": busi.url("TransIn")}],
        "payloads": [json.dumps(AMOUNT)],
        "query_prepared": busi.url("QueryPrepared"),
        "protocol": "json-rpc",
    }
    status, answer = rpc(dtm_server, "prepare", params)
    assert_ok(status, answer)
    assert dtm_server.query(gid)["transaction"]["status"] == "prepared"

    status, answer = rpc(dtm_server, "abort", {"gid": gid, "trans_type": "msg"})
    assert_ok(status, answer)
    assert dtm_server.query(gid)["transaction"]["status"] == "failed"

    # aborting again: stored status is no longer prepared -> FAILURE
    status, answer = rpc(dtm_server, "abort", {"gid": gid, "trans_type": "msg"})
    assert status == 200, (status, answer)
    assert_error(answer, -32901)
    time.sleep(0.5)
    assert busi.calls(gid) == []
