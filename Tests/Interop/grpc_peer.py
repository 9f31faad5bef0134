"""A real grpcio peer for the Swift HTTP2 target's interop test (Tests/HTTP2Tests/GRPCInteropTests.swift).

  grpc_peer.py client PORT   calls the Swift GRPCServer's test.Echo methods; prints OK or the failure, exit 0/1
  grpc_peer.py server        serves test.Echo on 127.0.0.1 (free port, printed first), until stdin closes

Messages are raw bytes (no serializers): the coordinator passes branch payloads through unparsed too.
Not a pytest module on purpose (no test_ prefix): it needs the Swift side to drive it.
"""

import sys
from concurrent import futures

import grpc

BIG = bytes((i * 31 + 7) % 256 for i in range(3 * 1024 * 1024))
FAIL_TEXT = "FAILURE: ü 100%"


def client(port):
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    echo = ch.unary_unary("/test.Echo/Echo")
    resp, call = echo.with_call(b"hello", metadata=[("dtm-gid", "g1")], timeout=5)
    assert resp == b"hello", resp
    assert ("x-gid", "g1") in call.initial_metadata(), call.initial_metadata()
    assert echo(BIG, timeout=20) == BIG
    assert echo(b"", timeout=5) == b""
    for method, code, details in (
        ("/test.Echo/Fail", grpc.StatusCode.ABORTED, FAIL_TEXT),
        ("/test.Echo/Nope", grpc.StatusCode.UNIMPLEMENTED, None),
    ):
        try:
            ch.unary_unary(method)(b"x", timeout=5)
            raise AssertionError(f"{method} succeeded")
        except grpc.RpcError as e:
            assert e.code() == code, (method, e.code(), e.details())
            assert details is None or e.details() == details, e.details()
    try:
        ch.unary_unary("/test.Echo/Sleep")(b"", timeout=0.2)
        raise AssertionError("Sleep succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e.code()
    calls = [echo.future(str(i).encode(), timeout=10) for i in range(100)]
    assert [c.result() for c in calls] == [str(i).encode() for i in range(100)]
    print("OK", flush=True)


class Echo(grpc.GenericRpcHandler):
    def service(self, details):
        if details.method == "/test.Echo/Echo":
            return grpc.unary_unary_rpc_method_handler(self.echo)
        if details.method == "/test.Echo/Fail":
            return grpc.unary_unary_rpc_method_handler(self.fail)
        return None  # grpcio answers UNIMPLEMENTED

    @staticmethod
    def echo(request, context):
        md = dict(context.invocation_metadata())
        context.send_initial_metadata([("x-gid", md.get("dtm-gid", ""))])
        return request

    @staticmethod
    def fail(request, context):
        context.abort(grpc.StatusCode.ABORTED, FAIL_TEXT)


def server():
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=[Echo()],
                      options=[("grpc.max_receive_message_length", 8 * 1024 * 1024)])
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    print(port, flush=True)
    sys.stdin.read()
    srv.stop(0)


if __name__ == "__main__":
    try:
        client(int(sys.argv[2])) if sys.argv[1] == "client" else server()
    except AssertionError as e:
        print(f"FAILED: {e!r}", flush=True)
        sys.exit(1)
