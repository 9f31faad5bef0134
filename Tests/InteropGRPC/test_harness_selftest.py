"""Self-test of the harness, independent of dtm-server: the stubs generated from <repo>/Protos and the grpcio
branch services behave as the other tests assume. Run alone with `-k selftest` (no server binary needed).
"""

import grpc
import pytest

import grpc_harness as h


@pytest.fixture
def client_for():
    channels = []

    def make(svc):
        ch = grpc.insecure_channel(svc.target, options=h.CHANNEL_OPTIONS)
        channels.append(ch)
        grpc.channel_ready_future(ch).result(timeout=5)
        return ch

    yield make
    for ch in channels:
        ch.close()


def test_selftest_stub_wire_format(pb):
    # DtmRequest{Gid:"g", TransType:"saga", BinPayloads:[ReqGrpc{Amount:30}]} as Go's protobuf encodes it
    payload = pb.ReqGrpc(Amount=30).SerializeToString()
    assert payload == b"\x08\x1e"
    assert pb.DtmRequest(Gid="g", TransType="saga", BinPayloads=[payload]).SerializeToString() == \
        b"\x0a\x01g\x12\x04saga\x2a\x02\x08\x1e"
    opts = pb.DtmTransOptions(WaitResult=True, RequestTimeout=7)
    assert opts.SerializeToString() == b"\x08\x01\x30\x07"
    assert pb.DtmGidReply.FromString(b"\x0a\x03abc").Gid == "abc"
    assert h.steps_json([{"action": "a:1/p.S/M", "compensate": "a:1/p.S/R"}]) == \
        '[{"action":"a:1/p.S/M","compensate":"a:1/p.S/R"}]'


def test_selftest_branch_service_records_and_answers(grpc_services, client_for):
    svc = grpc_services("busi", services={"busi.Busi"})
    assert svc.url("/busi.Busi/TransOut") == "127.0.0.1:%d/busi.Busi/TransOut" % svc.port
    ch = client_for(svc)
    trans_out = ch.unary_unary("/busi.Busi/TransOut", request_serializer=None, response_deserializer=None)
    trans_in = ch.unary_unary("/busi.Busi/TransIn", request_serializer=None, response_deserializer=None)
    md = [("dtm-gid", "g1"), ("dtm-trans_type", "saga"), ("dtm-branch_id", "01"), ("dtm-op", "action"),
          ("dtm-dtm", ""), ("test_header", "v")]

    assert trans_out(b"\x08\x1e", metadata=md, timeout=3) == b""
    svc.on("TransIn", h.aborted("FAILURE"), h.ongoing(), h.unavailable(), h.OK, gid="g1")
    got = []
    for _ in range(5):
        try:
            trans_in(b"\x08\x1f", metadata=md, timeout=3)
            got.append(grpc.StatusCode.OK)
        except grpc.RpcError as e:
            got.append((e.code(), e.details()))
    assert got == [(grpc.StatusCode.ABORTED, "FAILURE"), (grpc.StatusCode.FAILED_PRECONDITION, "ONGOING"),
                   (grpc.StatusCode.UNAVAILABLE, "service unavailable"), grpc.StatusCode.OK, grpc.StatusCode.OK]
    # other gids are not affected by the rule
    assert trans_in(b"", metadata=[("dtm-gid", "g2")], timeout=3) == b""

    calls = svc.calls("g1")
    assert len(calls) == 6
    c = calls[0]
    assert c.summary() == ("/busi.Busi/TransOut", "01", "action")
    assert c.request == b"\x08\x1e"
    assert c.metadata["dtm-dtm"] == "" and c.metadata["test_header"] == "v"
    assert 0 < c.time_remaining <= 3.5  # grpc rounds the grpc-timeout up slightly
    h.assert_dtm_metadata(c, "g1", "saga", "01", "action", extra={"test_header": "v"}, max_deadline=3)
    assert [x.request for x in calls[1:]] == [b"\x08\x1f"] * 5
    assert len(svc.calls("g2")) == 1


def test_selftest_branch_service_unimplemented_for_other_services(grpc_services, client_for):
    svc = grpc_services("tag", services={"tag.TagSign"})
    ch = client_for(svc)
    with pytest.raises(grpc.RpcError) as ei:
        ch.unary_unary("/busi.Busi/TransOut")(b"", metadata=[("dtm-gid", "g")], timeout=3)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert [c.method for c in svc.calls("g")] == ["/busi.Busi/TransOut"]


def test_selftest_expect_rpc_error_fails_on_success(grpc_services, client_for):
    svc = grpc_services("busi")
    ch = client_for(svc)
    with pytest.raises(pytest.fail.Exception):
        h.expect_rpc_error(ch.unary_unary("/busi.Busi/TransOut"), b"", codes=grpc.StatusCode.ABORTED)
    svc.on("TransOut", h.aborted("x FAILURE"))
    e = h.expect_rpc_error(ch.unary_unary("/busi.Busi/TransOut"), b"", codes=grpc.StatusCode.ABORTED,
                           contains="FAILURE")
    assert e.details() == "x FAILURE"
