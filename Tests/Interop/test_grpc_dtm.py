"""Python grpcio against the real swift-dtm gRPC listener.

Stubs are generated from the repository's Protos/ at test time (nothing generated is committed), so this checks
that a client built from our proto — the same wire as DTM's dtmgrpc — works unchanged. The branch services are
grpcio servers on raw bytes that record the metadata swift-dtm sends.
"""
import json
import pathlib
import sys
import threading
import time
from concurrent import futures

import grpc
import pytest
from grpc_tools import protoc

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    out = tmp_path_factory.mktemp("stubs")
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(["protoc", f"-I{REPO / 'Protos'}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
                      "dtmgimp.proto", "busi.proto"])
    assert rc == 0, "protoc failed on Protos/"
    sys.path.insert(0, str(out))
    import dtmgimp_pb2, dtmgimp_pb2_grpc, busi_pb2  # noqa: E402
    return dtmgimp_pb2, dtmgimp_pb2_grpc, busi_pb2


class GrpcBranches:
    """A grpcio server answering every method on raw bytes; `fail` maps a method name to a status code."""

    def __init__(self):
        self.calls = []
        self.fail = {}
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers([self])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def service(self, details):
        method = details.method

        def handle(request, context):
            md = dict(context.invocation_metadata())
            with self.lock:
                self.calls.append((method.rsplit("/", 1)[1], md, request))
            code = self.fail.pop(method.rsplit("/", 1)[1], None)
            if code is not None:
                context.abort(code, "from test")
            return b""

        return grpc.unary_unary_rpc_method_handler(handle, request_deserializer=None, response_serializer=None)

    def url(self, path):
        return f"127.0.0.1:{self.port}{path}"

    def trail(self, gid):
        with self.lock:
            return [f"{m}/{md.get('dtm-op')}" for m, md, _ in self.calls if md.get("dtm-gid") == gid]


@pytest.fixture()
def branches():
    b = GrpcBranches()
    yield b
    b.server.stop(0)


def test_grpcio_client_every_saga_path(dtm_server, pb, branches):
    dtmgimp_pb2, dtmgimp_pb2_grpc, busi_pb2 = pb
    stub = dtmgimp_pb2_grpc.DtmStub(grpc.insecure_channel(dtm_server.grpc_target))
    from google.protobuf import empty_pb2

    gid = stub.NewGid(empty_pb2.Empty()).Gid
    assert len(gid) == 22

    payload = busi_pb2.ReqGrpc(Amount=30).SerializeToString()
    steps = [{"action": branches.url("/tag.TagSign/SignUserChooseTag"), "compensate": branches.url("/tag.TagSign/SignUserChooseTagRevert")},
             {"action": branches.url("/user.UserService/UserCreate"), "compensate": branches.url("/user.UserService/UserCreateRevert")}]

    def saga(g, wait=True):
        return dtmgimp_pb2.DtmRequest(Gid=g, TransType="saga", Steps=json.dumps(steps), BinPayloads=[payload, payload],
                                      TransOptions=dtmgimp_pb2.DtmTransOptions(WaitResult=wait, BranchHeaders={"test_header": "yes"}))

    stub.Submit(saga(gid))
    assert branches.trail(gid) == ["SignUserChooseTag/action", "UserCreate/action"]
    _, md, body = [c for c in branches.calls if c[1].get("dtm-gid") == gid][1]
    assert md["dtm-trans_type"] == "saga" and md["dtm-branch_id"] == "02" and md["dtm-dtm"] == "" and md["test_header"] == "yes"
    assert body == payload
    assert dtm_server.query(gid)["transaction"]["protocol"] == "grpc"

    with pytest.raises(grpc.RpcError) as again:
        stub.Submit(saga(gid))
    assert again.value.code() == grpc.StatusCode.ABORTED and "cannot sumbmit" in again.value.details()

    failing = gid + "-f"
    branches.fail["UserCreate"] = grpc.StatusCode.ABORTED
    with pytest.raises(grpc.RpcError) as failed:
        stub.Submit(saga(failing))
    assert failed.value.code() == grpc.StatusCode.ABORTED
    assert branches.trail(failing) == ["SignUserChooseTag/action", "UserCreate/action",
                                       "UserCreateRevert/compensate", "SignUserChooseTagRevert/compensate"]
    assert dtm_server.query(failing)["transaction"]["status"] == "failed"


def test_grpcio_client_tcc_workflow_topics_and_errors(dtm_server, pb, branches):
    dtmgimp_pb2, dtmgimp_pb2_grpc, _ = pb
    channel = grpc.insecure_channel(dtm_server.grpc_target)
    stub = dtmgimp_pb2_grpc.DtmStub(channel)
    gid = "pytcc-%d" % int(time.time() * 1000)
    stub.Prepare(dtmgimp_pb2.DtmRequest(Gid=gid, TransType="tcc"))
    for bid, name in (("01", "TransOut"), ("02", "TransIn")):
        stub.RegisterBranch(dtmgimp_pb2.DtmBranchRequest(Gid=gid, TransType="tcc", BranchID=bid, BusiPayload=b"\x08\x1e",
                                                         Data={"confirm": branches.url(f"/busi.Busi/{name}Confirm"),
                                                               "cancel": branches.url(f"/busi.Busi/{name}Revert")}))
    stub.Submit(dtmgimp_pb2.DtmRequest(Gid=gid, TransType="tcc", TransOptions=dtmgimp_pb2.DtmTransOptions(WaitResult=True)))
    assert branches.trail(gid) == ["TransInConfirm/confirm", "TransOutConfirm/confirm"]

    wf = stub.PrepareWorkflow(dtmgimp_pb2.DtmRequest(Gid=gid + "-wf", TransType="workflow", CustomedData='{"name":"w"}'))
    assert wf.Transaction.Gid == gid + "-wf" and wf.Transaction.Status == "prepared" and len(wf.Progresses) == 0
    stub.RegisterBranch(dtmgimp_pb2.DtmBranchRequest(Gid=gid + "-wf", TransType="workflow", BranchID="01", BusiPayload=b"r",
                                                     Data={"op": "action", "status": "succeed"}))
    wf = stub.PrepareWorkflow(dtmgimp_pb2.DtmRequest(Gid=gid + "-wf", TransType="workflow"))
    assert [(p.BranchID, p.Op, p.Status, p.BinData) for p in wf.Progresses] == [("01", "action", "succeed", b"r")]

    topic = dtmgimp_pb2.DtmTopicRequest(Topic="t-" + gid, URL=branches.url("/busi.Busi/TransIn"))
    stub.Subscribe(topic)
    with pytest.raises(grpc.RpcError) as dup:
        stub.Subscribe(topic)
    assert dup.value.code() == grpc.StatusCode.UNKNOWN and dup.value.details() == "this url exists"
    stub.Unsubscribe(topic)
    stub.DeleteTopic(topic)

    raw = channel.unary_unary("/dtmgimp.Dtm/Submit", request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as bad:
        raw(b"\x0a\xff\x01")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    nope = channel.unary_unary("/dtmgimp.Dtm/Nope", request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as unknown:
        nope(b"")
    assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.RpcError) as big:
        raw(b"\x0a\x01x" + b"\x2a\x80\x80\x80\x03" + b"\x00" * (6 << 20))
    assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(stub.NewGid(__import__("google.protobuf.empty_pb2", fromlist=["Empty"]).Empty()).Gid) == 22
