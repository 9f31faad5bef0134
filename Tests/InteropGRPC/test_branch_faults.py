"""Branch faults (issue 5, deliverable 2): branch services that answer after the request timeout, answer 500 /
UNAVAILABLE, reset the connection mid-response, refuse connections, or go away (GOAWAY) — a saga converges to
succeed once the fault is lifted, each action's effect is asked for again until it is acknowledged, and no
compensation runs. Against a dtm-server of its own with a 1 s request timeout and back-off capped at 2 s.
"""

import socket
import socketserver
import threading
import time

import grpc
import pytest
import requests

import grpc_harness as h

CONVERGE = 20  # seconds a saga may take to finish once its fault is lifted


@pytest.fixture(scope="module")
def faulty_server(tmp_path_factory):
    from conftest import private_dtm_server

    with private_dtm_server(tmp_path_factory, "faults-dtm", {"REQUEST_TIMEOUT": "1", "MAX_RETRY_INTERVAL": "2"}) as server:
        yield server


@pytest.fixture(scope="module")
def faulty_grpc(faulty_server, pb):
    from conftest import dtm_stub

    with dtm_stub(faulty_server, pb) as stub:
        yield stub


class FaultyHTTPBranch:
    """An HTTP/1.1 branch service whose answer is chosen by `mode`: ok, slow (answers after 3 s), 500, reset
    (sends half a response, then resets the connection). Records every (path, gid, op) it receives."""

    def __init__(self, port=0):
        outer = self
        self.mode = "ok"
        self.calls = []
        self.lock = threading.Lock()

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    path = line.split()[1].decode()
                    length = 0
                    while True:
                        header = self.rfile.readline()
                        if header in (b"\r\n", b"\n", b""):
                            break
                        if header.lower().startswith(b"content-length:"):
                            length = int(header.split(b":")[1])
                    if length:
                        self.rfile.read(length)
                    query = dict(p.split("=", 1) for p in path.split("?", 1)[1].split("&")) if "?" in path else {}
                    with outer.lock:
                        outer.calls.append((path.split("?")[0], query.get("gid"), query.get("op"), outer.mode))
                        mode = outer.mode
                    if mode == "slow":
                        time.sleep(3)
                    if mode == "reset":
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"dtm_res")
                        self.wfile.flush()
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                        self.connection.close()
                        return
                    status = b"500 Internal Server Error" if mode == "500" else b"200 OK"
                    body = b'{"dtm_result":"SUCCESS"}' if mode != "500" else b"boom"
                    try:
                        self.wfile.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name):
        return "http://127.0.0.1:%d/api/busi/%s" % (self.port, name)

    def of(self, gid):
        with self.lock:
            return [c for c in self.calls if c[1] == gid]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _http_saga(server, gid, urls):
    steps = [{"action": urls("TransOut"), "compensate": urls("TransOutRevert")},
             {"action": urls("TransIn"), "compensate": urls("TransInRevert")}]
    r = requests.post(server.api + "/submit", json={"gid": gid, "trans_type": "saga", "steps": steps,
                                                     "payloads": ["{}", "{}"], "retry_interval": 1}, timeout=5)
    assert r.status_code == 200, r.text


def _wait_status(server, gid, wanted, timeout):
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        t = server.query(gid)["transaction"]
        status = t and t["status"]
        if status == wanted:
            return
        time.sleep(0.2)
    raise AssertionError("%s: status %s, wanted %s within %.0f s" % (gid, status, wanted, timeout))


@pytest.mark.parametrize("mode", ["slow", "500", "reset"])
def test_http_branch_fault_then_recovery(faulty_server, mode):
    busi = FaultyHTTPBranch()
    busi.mode = mode
    gid = h.new_gid("fault-" + mode)
    try:
        _http_saga(faulty_server, gid, busi.url)
        deadline = time.monotonic() + 10
        while len(busi.of(gid)) < 2 and time.monotonic() < deadline:  # retried at least once while faulty
            time.sleep(0.1)
        faulty_calls = busi.of(gid)
        assert len(faulty_calls) >= 2 and all(c[0].endswith("/TransOut") for c in faulty_calls), faulty_calls
        assert faulty_server.query(gid)["transaction"]["status"] == "submitted"
        busi.mode = "ok"
        _wait_status(faulty_server, gid, "succeed", CONVERGE)
        names = [c[0].rsplit("/", 1)[1] for c in busi.of(gid)]
        assert "TransOutRevert" not in names and "TransInRevert" not in names, names
        assert names[-2:] == ["TransOut", "TransIn"] or names[-1] == "TransIn", names
    finally:
        busi.stop()


def test_http_branch_refusing_connections_then_listening(faulty_server):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens on `port` now: connections are refused
    gid = h.new_gid("fault-refused")
    _http_saga(faulty_server, gid, lambda name: "http://127.0.0.1:%d/api/busi/%s" % (port, name))
    time.sleep(3)  # a few refused attempts
    assert faulty_server.query(gid)["transaction"]["status"] == "submitted"
    busi = FaultyHTTPBranch(port=port)
    try:
        _wait_status(faulty_server, gid, "succeed", CONVERGE)
        names = [c[0].rsplit("/", 1)[1] for c in busi.of(gid)]
        assert names == ["TransOut", "TransIn"], names
    finally:
        busi.stop()


def test_grpc_branch_unavailable_and_deadline_then_recovery(faulty_server, faulty_grpc, pb, grpc_services):
    svc = grpc_services("faulty")
    gid = h.new_gid("fault-grpc")
    svc.on("TransOut", h.GrpcReply(grpc.StatusCode.UNAVAILABLE, "down"), h.GrpcReply(delay=2.0), h.OK, gid=gid)
    faulty_grpc.Submit(h.saga_request(pb, gid, h.busi_saga_steps(svc), h.busi_payloads(pb), retry_interval=1), timeout=5)
    _wait_status(faulty_server, gid, "succeed", CONVERGE)
    names = [c.method for c in svc.calls(gid)]
    assert names[:3] == ["/busi.Busi/TransOut"] * 3 and names[3:] == ["/busi.Busi/TransIn"], names


def test_grpc_branch_goaway_and_restart_on_the_same_port(faulty_server, faulty_grpc, pb):
    first = h.GrpcBranchService("before-goaway").start()
    port = first.port
    gid_ok = h.new_gid("goaway-warm")
    faulty_grpc.Submit(h.saga_request(pb, gid_ok, h.busi_saga_steps(first), h.busi_payloads(pb), wait_result=True),
                       timeout=10)
    assert faulty_server.query(gid_ok)["transaction"]["status"] == "succeed"  # the pool holds a connection now
    first.stop()  # GOAWAY on that connection, then the port is closed
    gid = h.new_gid("goaway")
    steps = [{"action": "127.0.0.1:%d/busi.Busi/TransOut" % port, "compensate": "127.0.0.1:%d/busi.Busi/TransOutRevert" % port},
             {"action": "127.0.0.1:%d/busi.Busi/TransIn" % port, "compensate": "127.0.0.1:%d/busi.Busi/TransInRevert" % port}]
    faulty_grpc.Submit(h.saga_request(pb, gid, steps, h.busi_payloads(pb), retry_interval=1), timeout=5)
    time.sleep(2)
    assert faulty_server.query(gid)["transaction"]["status"] == "submitted"
    second = h.GrpcBranchService("after-goaway")
    second.server = grpc.server(h.futures.ThreadPoolExecutor(max_workers=8), handlers=[h._AnyMethodHandler(second)])
    assert second.server.add_insecure_port("127.0.0.1:%d" % port) == port
    second.start()
    try:
        _wait_status(faulty_server, gid, "succeed", CONVERGE)
        assert [c.method for c in second.calls(gid)] == ["/busi.Busi/TransOut", "/busi.Busi/TransIn"]
    finally:
        second.stop()
