#!/usr/bin/env python3
"""Writes the seed corpora in Tests/FuzzCorpus/<target>/ (scripts/fuzz.sh): a handful of valid inputs
per target, in the record formats the harnesses in Sources/Fuzz/ read. Standard library only."""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "FuzzCorpus")


def write(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


def record(selector, body):
    return bytes([selector]) + struct.pack(">H", len(body)) + body


# --- protobuf (hand-encoded proto3 wire format) --------------------------------------------------

def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def ld(field, payload):  # length-delimited field
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def vi(field, n):
    return varint(field << 3) + varint(n)


def entry(field, k, v):  # map<string,string> entry
    return ld(field, ld(1, k) + ld(2, v))


def dtm_request(gid, trans_type, steps=None, payloads=(), custom="", query_prepared="", wait=False,
                headers=None, extra=None, reason="", timeout_to_fail=0, retry_interval=0, retry_limit=0):
    opts = (vi(1, 1) if wait else b"") + (vi(2, timeout_to_fail) if timeout_to_fail else b"")
    opts += vi(3, retry_interval) if retry_interval else b""
    for k, v in (headers or {}).items():
        opts += entry(5, k, v)
    opts += vi(7, retry_limit) if retry_limit else b""
    m = ld(1, gid) + ld(2, trans_type) + ld(3, opts)
    if custom:
        m += ld(4, custom)
    for p in payloads:
        m += ld(5, p)
    if query_prepared:
        m += ld(6, query_prepared)
    m += ld(7, json.dumps(steps, separators=(",", ":")) if steps is not None else "null")
    for k, v in (extra or {}).items():
        m += entry(8, k, v)
    if reason:
        m += ld(9, reason)
    return m


def branch_request(gid, trans_type, branch_id, data, payload=b""):
    m = ld(1, gid) + ld(2, trans_type) + ld(3, branch_id)
    for k, v in data.items():
        m += entry(5, k, v)
    return m + (ld(6, payload) if payload else b"")


def topic_request(topic, url, remark=""):
    return ld(1, topic) + ld(2, url) + (ld(3, remark) if remark else b"")


METHODS = sorted([
    "/dtmgimp.Dtm/NewGid", "/dtmgimp.Dtm/Submit", "/dtmgimp.Dtm/Prepare", "/dtmgimp.Dtm/Abort",
    "/dtmgimp.Dtm/RegisterBranch", "/dtmgimp.Dtm/PrepareWorkflow", "/dtmgimp.Dtm/Subscribe",
    "/dtmgimp.Dtm/Unsubscribe", "/dtmgimp.Dtm/DeleteTopic", "/grpc.health.v1.Health/Check",
]) + ["/dtmgimp.Dtm/Unknown"]


def m(name):
    return METHODS.index("/dtmgimp.Dtm/" + name)


busi = "localhost:8081/busi.Busi/"
saga_steps = [{"action": busi + "TransOut", "compensate": busi + "TransOutRevert"},
              {"action": busi + "TransIn", "compensate": busi + "TransInRevert"}]
P = "FuzzProtoRequest"
write(P, "saga-submit-wait", record(m("Submit"), dtm_request(
    "g-saga-1", "saga", saga_steps, payloads=[b'{"amount":30}', b'{"amount":30}'], wait=True,
    timeout_to_fail=60, retry_interval=10, headers={"test_header": "yes"})))
write(P, "saga-failing-custom", record(m("Submit"), dtm_request(
    "g-saga-2", "saga", [{"action": busi + "TransOut", "compensate": busi + "TransOutRevert"},
                         {"action": busi + "TransInfail", "compensate": busi + "TransInRevert"}],
    payloads=[b"a", b"b"], wait=True, custom='{"orders":{"1":[0]},"concurrent":true}')))
write(P, "tcc-prepare-register-abort",
      record(m("Prepare"), dtm_request("g-tcc-1", "tcc"))
      + record(m("RegisterBranch"), branch_request("g-tcc-1", "tcc", "01", {
          "confirm": busi + "TccConfirm", "cancel": busi + "TccCancel"}, b"payload"))
      + record(m("Abort"), dtm_request("g-tcc-1", "tcc", wait=True, reason="because")))
write(P, "msg-prepare-submit",
      record(m("Prepare"), dtm_request("g-msg-1", "msg", [{"action": busi + "TransIn"}], payloads=[b"x"],
                                       query_prepared=busi + "QueryPrepared"))
      + record(m("Submit"), dtm_request("g-msg-1", "msg", [{"action": busi + "TransIn"}], payloads=[b"x"])))
write(P, "workflow", record(m("PrepareWorkflow"), dtm_request("g-wf-1", "workflow", custom='{"name":"wf","data":"eA=="}'))
      + record(m("RegisterBranch"), branch_request("g-wf-1", "workflow", "01", {"op": "action", "status": "succeed"}))
      + record(m("Submit"), dtm_request("g-wf-1", "workflow", extra={"status": "succeed", "result": "r"})))
write(P, "topics", record(m("Subscribe"), topic_request("t1", busi + "TransIn", "remark"))
      + record(m("Submit"), dtm_request("g-msg-2", "msg", [{"action": "topic://t1"}], payloads=[b"y"]))
      + record(m("Unsubscribe"), topic_request("t1", busi + "TransIn"))
      + record(m("DeleteTopic"), topic_request("t1", "")))
# Numbers at and past every limit: the harness then drives the stored transactions through the cron path.
INT64_MAX, INT64_MIN, MAX_SECONDS = (1 << 63) - 1, -(1 << 63), 3153600000
write(P, "extremes-saga-msg-tcc",
      record(m("Submit"), dtm_request("g-x-1", "saga", saga_steps[:1], payloads=[b"{}"], timeout_to_fail=MAX_SECONDS,
                                      retry_interval=MAX_SECONDS, retry_limit=INT64_MAX))
      + record(m("Submit"), dtm_request("g-x-2", "saga", [{"action": busi + "Transerr", "compensate": ""}], payloads=[b"{}"],
                                        retry_interval=INT64_MAX, retry_limit=INT64_MIN))
      + record(m("Submit"), dtm_request("g-x-3", "msg", [{"action": busi + "TransIn"}], payloads=[b"x"],
                                        custom=json.dumps({"delay": MAX_SECONDS})))
      + record(m("Submit"), dtm_request("g-x-4", "msg", [{"action": busi + "TransIn"}], payloads=[b"x"],
                                        custom=json.dumps({"delay": 10000000000000})))
      + record(m("Prepare"), dtm_request("g-x-5", "tcc", timeout_to_fail=INT64_MIN))
      + record(m("Prepare"), dtm_request("g-x-6", "msg", [{"action": busi + "TransIn"}], payloads=[b"x"],
                                         query_prepared=busi + "Queryongoing", timeout_to_fail=1)))
write(P, "newgid-health", record(m("NewGid"), b"") + record(METHODS.index("/grpc.health.v1.Health/Check"), b""))

# --- JSON -------------------------------------------------------------------------------------------

ROUTES = ["prepare", "submit", "abort", "forceStop", "resetNextCronTime", "registerBranch", "registerTccBranch",
          "registerXaBranch", "prepareWorkflow", "json-rpc", "query?", "all?", "scanKV?", "queryKV?", "resetCronTime?",
          "subscribe?", "unsubscribe?", "topic/", "newGid", "ping"]


def r(name, body):
    if not isinstance(body, bytes):
        body = (body if isinstance(body, str) else json.dumps(body)).encode()
    return record(ROUTES.index(name), body)


http = "http://localhost:8081/api/busi/"
J = "FuzzJSONRequest"
write(J, "saga-submit-wait", r("submit", {
    "gid": "g-saga-1", "trans_type": "saga", "wait_result": True, "timeout_to_fail": 60, "retry_interval": 10,
    "steps": [{"action": http + "TransOut", "compensate": http + "TransOutRevert"},
              {"action": http + "TransIn", "compensate": http + "TransInRevert"}],
    "payloads": ['{"amount":30}', '{"amount":30}'], "branch_headers": {"h": "v"}, "custom_data": "",
    "protocol": None}))
write(J, "saga-legacy-data-failing", r("submit", {
    "gid": "g-saga-2", "trans_type": "saga", "wait_result": True, "concurrent": True,
    "custom_data": '{"orders":{"1":[0]},"concurrent":true}',
    "steps": [{"action": http + "TransOut", "compensate": http + "TransOutRevert", "data": "{}"},
              {"action": http + "TransInfail", "compensate": http + "TransInRevert", "data": "{}"}]}))
write(J, "tcc-prepare-register-abort", r("prepare", {"gid": "g-tcc-1", "trans_type": "tcc"})
      + r("registerBranch", {"gid": "g-tcc-1", "trans_type": "tcc", "branch_id": "01", "data": "{}",
                             "confirm": http + "TccConfirm", "cancel": http + "TccCancel"})
      + r("abort", {"gid": "g-tcc-1", "trans_type": "tcc", "rollback_reason": "why"})
      + r("query?", "gid=g-tcc-1"))
write(J, "msg-prepare-submit-query", r("prepare", {
    "gid": "g-msg-1", "trans_type": "msg", "query_prepared": http + "QueryPrepared",
    "steps": [{"action": http + "TransIn"}], "payloads": ["x"]})
      + r("submit", {"gid": "g-msg-1", "trans_type": "msg", "steps": [{"action": http + "TransIn"}], "payloads": ["x"]})
      + r("all?", "limit=10&status=submitted&createTimeStart=1") + r("forceStop", {"gid": "g-msg-1"})
      + r("resetNextCronTime", {"gid": "g-msg-1"}) + r("resetCronTime?", "timeout=10&limit=5"))
write(J, "extremes-options-and-queries", r("submit", {
    "gid": "g-x-1", "trans_type": "saga", "timeout_to_fail": 3153600000, "retry_interval": 3153600000,
    "request_timeout": 3153600000, "retry_limit": 9223372036854775807,
    "steps": [{"action": http + "Transerr", "compensate": http + "TransOutRevert"}], "payloads": ["{}"]})
      + r("submit", {"gid": "g-x-2", "trans_type": "msg", "custom_data": '{"delay":10000000000000}',
                     "steps": [{"action": http + "TransIn"}], "payloads": ["x"]})
      + r("submit", {"gid": "g-x-3", "trans_type": "msg", "custom_data": '{"delay":3153600000}',
                     "steps": [{"action": http + "TransIn"}], "payloads": ["x"]})
      + r("prepare", {"gid": "g-x-4", "trans_type": "tcc", "timeout_to_fail": -9223372036854775808})
      + r("resetCronTime?", "timeout=10000000000000&limit=99999999999999999999")
      + r("all?", "createTimeStart=10000000000000000&createTimeEnd=-1&limit=100000&position=-1")
      + r("scanKV?", "cat=topics&limit=9223372036854775807&position=9223372036854775807"))
write(J, "workflow", r("prepareWorkflow", {"gid": "g-wf-1", "trans_type": "workflow", "req_extra": {"a": "b"}})
      + r("registerBranch", {"gid": "g-wf-1", "trans_type": "workflow", "branch_id": "01", "op": "action",
                             "status": "succeed"})
      + r("submit", {"gid": "g-wf-1", "trans_type": "workflow", "req_extra": {"status": "failed", "rollback_reason": "r"}}))
write(J, "topics-kv", r("subscribe?", "topic=t1&url=" + http + "TransIn&remark=r%20x")
      + r("scanKV?", "cat=topics&limit=10") + r("queryKV?", "cat=topics&key=t1")
      + r("unsubscribe?", "topic=t1&url=" + http + "TransIn") + r("topic/", "t1"))
write(J, "json-rpc", r("json-rpc", {"jsonrpc": "2.0", "id": "1", "method": "submit", "params": {
    "gid": "g-rpc-1", "trans_type": "saga", "steps": [{"action": http + "TransOut"}], "payloads": ["{}"]}})
      + r("json-rpc", {"jsonrpc": "2.0", "id": "2", "method": "newGid", "params": {}}) + r("newGid", b"") + r("ping", b""))

# --- HTTP/2 (after the client preface, which the harness sends) --------------------------------------

def frame(type_, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([type_, flags]) + struct.pack(">I", stream) + payload


def hpack_literal(name, value):  # literal header field without indexing, new name, no Huffman
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def request_headers(path, extra=()):
    block = b"".join(hpack_literal(n, v) for n, v in [
        (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost:36790"),
        ("content-type", "application/grpc"), ("te", "trailers"), *extra])
    return block


def grpc_frame(message, flag=0):
    return bytes([flag]) + struct.pack(">I", len(message)) + message


SETTINGS = frame(4, 0, 0, struct.pack(">HI", 3, 100) + struct.pack(">HI", 4, 65535))
SETTINGS_ACK = frame(4, 1, 0, b"")
END_STREAM, END_HEADERS, PADDED = 1, 4, 8
H = "FuzzH2Server"
submit = dtm_request("g-h2-1", "saga", saga_steps[:1])
write(H, "unary", SETTINGS + SETTINGS_ACK
      + frame(1, END_HEADERS, 1, request_headers("/dtmgimp.Dtm/Submit", [("grpc-timeout", "1S"), ("x-md", "v")]))
      + frame(0, END_STREAM, 1, grpc_frame(submit)))
write(H, "unary-odd-reply", SETTINGS
      + frame(1, END_HEADERS, 1, request_headers("/dtmgimp.Dtm/Abort"))
      + frame(0, 0, 1, grpc_frame(b"\x0bbad things %")[:4]) + frame(0, END_STREAM, 1, grpc_frame(b"\x0bbad things %")[4:]))
write(H, "two-requests-window-ping", SETTINGS
      + frame(1, END_HEADERS, 1, request_headers("/dtmgimp.Dtm/Prepare"))
      + frame(0, END_STREAM, 1, grpc_frame(b"\x02abc"))
      + frame(8, 0, 0, struct.pack(">I", 1 << 20)) + frame(6, 0, 0, b"12345678")
      + frame(1, END_HEADERS | END_STREAM, 3, request_headers("/dtmgimp.Dtm/NewGid"))
      + frame(1, END_HEADERS, 5, request_headers("/dtmgimp.Dtm/Submit")) + frame(3, 0, 5, struct.pack(">I", 8)))
block = request_headers("/fuzz.Echo/Stream")
write(H, "streaming-continuation-padded", SETTINGS
      + frame(1, 0, 1, block[:20]) + frame(9, END_HEADERS, 1, block[20:])
      + frame(0, PADDED, 1, b"\x03" + grpc_frame(b"\x00one") + b"\x00\x00\x00")
      + frame(0, END_STREAM, 1, grpc_frame(b"\x00two") + grpc_frame(b"\x00three")))
write(H, "errors-compressed-large-badtype", SETTINGS
      + frame(1, END_HEADERS, 1, request_headers("/dtmgimp.Dtm/Submit", [("grpc-encoding", "gzip")]))
      + frame(0, END_STREAM, 1, grpc_frame(b"zz", flag=1))
      + frame(1, END_HEADERS, 3, request_headers("/dtmgimp.Dtm/Submit")) + frame(0, END_STREAM, 3, struct.pack(">BI", 0, 5000))
      + frame(1, END_HEADERS | END_STREAM, 5, b"".join(hpack_literal(n, v) for n, v in [
          (":method", "GET"), (":scheme", "http"), (":path", "/x"), (":authority", "a"), ("content-type", "text/plain")]))
      + frame(7, 0, 0, struct.pack(">II", 5, 0)))

# --- gRPC framing (byte 0: limit index in the low 3 bits, chunk size - 1 in the high 5) ----------------
G = "FuzzGRPCFraming"
write(G, "two-messages", bytes([4 | (3 << 3)]) + grpc_frame(submit) + grpc_frame(b""))
write(G, "split-prefix", bytes([5 | (0 << 3)]) + grpc_frame(b"hello world") + grpc_frame(b"x" * 100)[:7])
write(G, "compressed", bytes([5 | (7 << 3)]) + grpc_frame(b"ok") + grpc_frame(b"gz", flag=1) + grpc_frame(b"after"))
write(G, "too-large", bytes([3 | (31 << 3)]) + grpc_frame(b"a" * 64) + grpc_frame(b"b" * 65))
write(G, "timeout-text", bytes([0]) + b"100m")
