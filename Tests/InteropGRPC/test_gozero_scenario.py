"""The go-zero scenario from the issue: a gRPC saga across two separate services (dtm-spec §15.5, §7.3).

    step 1: tag service   /tag.TagSign/SignUserChooseTag    compensate /tag.TagSign/SignUserChooseTagRevert
    step 2: user service  /user.UserService/UserCreate      compensate /user.UserService/UserCreateRevert

Each service is its own grpcio server on its own port and implements only its own gRPC service. The payloads are
those services' own protobuf messages (not busi.ReqGrpc): DTM forwards them as opaque bytes.
"""

import grpc
import pytest

import grpc_harness as h


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_varint(number, value):
    return _varint(number << 3 | 0) + _varint(value)


def _field_bytes(number, data):
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def sign_user_choose_tag_req(user_id, tag_ids):
    """tag.SignUserChooseTagReq{int64 user_id = 1; repeated int64 tag_ids = 2 (packed); string source = 3}."""
    packed = b"".join(_varint(t) for t in tag_ids)
    return _field_varint(1, user_id) + _field_bytes(2, packed) + _field_bytes(3, "signup".encode())


def user_create_req(user_id, mobile, nickname):
    """user.UserCreateReq{int64 id = 1; string mobile = 2; string nickname = 3}."""
    return _field_varint(1, user_id) + _field_bytes(2, mobile.encode()) + _field_bytes(3, nickname.encode())


@pytest.fixture
def gozero(grpc_services):
    tag = grpc_services("tag-rpc", services={"tag.TagSign"})
    user = grpc_services("user-rpc", services={"user.UserService"})
    return tag, user


def _saga(dtm_grpc, pb, gid, tag, user, wait_result=False):
    steps = [
        {"action": tag.url("/tag.TagSign/SignUserChooseTag"),
         "compensate": tag.url("/tag.TagSign/SignUserChooseTagRevert")},
        {"action": user.url("/user.UserService/UserCreate"),
         "compensate": user.url("/user.UserService/UserCreateRevert")},
    ]
    payloads = [sign_user_choose_tag_req(1001, [3, 7, 300]), user_create_req(1001, "13800000000", "gopher")]
    request = h.saga_request(pb, gid, steps, payloads, wait_result=wait_result)
    return request, payloads


def test_gozero_saga_across_two_services_succeeds(dtm_server, dtm_grpc, pb, gozero):
    tag, user = gozero
    gid = h.new_gid("gozero-ok")
    request, payloads = _saga(dtm_grpc, pb, gid, tag, user)
    dtm_grpc.Submit(request)

    q = dtm_server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == "succeed", q
    assert q["transaction"]["protocol"] == "grpc", q
    h.settle()

    tag_calls, user_calls = tag.calls(gid), user.calls(gid)
    assert h.summaries(tag_calls) == [("/tag.TagSign/SignUserChooseTag", "01", "action")]
    assert h.summaries(user_calls) == [("/user.UserService/UserCreate", "02", "action")]
    assert tag_calls[0].request == payloads[0]
    assert user_calls[0].request == payloads[1]
    h.assert_dtm_metadata(tag_calls[0], gid, "saga", "01", "action", max_deadline=3)
    h.assert_dtm_metadata(user_calls[0], gid, "saga", "02", "action", max_deadline=3)
    assert tag_calls[0].time <= user_calls[0].time
    assert h.branch_rows(dtm_server.query(gid)) == [
        ("01", "compensate", "prepared"),
        ("01", "action", "succeed"),
        ("02", "compensate", "prepared"),
        ("02", "action", "succeed"),
    ]


@pytest.mark.parametrize("wait_result", [False, True], ids=["async", "wait_result"])
def test_gozero_user_create_aborted_compensates_both(dtm_server, dtm_grpc, pb, gozero, wait_result):
    tag, user = gozero
    gid = h.new_gid("gozero-fail")
    user.on("UserCreate", h.aborted("mobile already registered"), gid=gid)
    request, payloads = _saga(dtm_grpc, pb, gid, tag, user, wait_result=wait_result)

    if wait_result:
        # the round ends `failed` with a rollback reason -> ABORTED (dtm-spec §8.8)
        h.expect_rpc_error(dtm_grpc.Submit, request, codes=grpc.StatusCode.ABORTED)
        q = dtm_server.query(gid)  # already final when Submit answered
    else:
        dtm_grpc.Submit(request)
        q = dtm_server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    trans = q["transaction"]
    assert trans["status"] == "failed", q
    reason = trans.get("rollback_reason") or ""
    assert user.url("/user.UserService/UserCreate") in reason, reason
    assert "mobile already registered" in reason, reason
    h.settle()

    everything = sorted(tag.calls(gid) + user.calls(gid), key=lambda c: c.time)
    assert [(c.service_label,) + c.summary() for c in everything] == [
        ("tag-rpc", "/tag.TagSign/SignUserChooseTag", "01", "action"),
        ("user-rpc", "/user.UserService/UserCreate", "02", "action"),
        ("user-rpc", "/user.UserService/UserCreateRevert", "02", "compensate"),
        ("tag-rpc", "/tag.TagSign/SignUserChooseTagRevert", "01", "compensate"),
    ]
    assert [c.request for c in everything] == [payloads[0], payloads[1], payloads[1], payloads[0]]
    for c in everything:
        h.assert_dtm_metadata(c, gid, "saga", c.branch_id, c.op)
    assert h.branch_rows(dtm_server.query(gid)) == [
        ("01", "compensate", "succeed"),
        ("01", "action", "succeed"),
        ("02", "compensate", "succeed"),
        ("02", "action", "failed"),
    ]
