"""Request bytes held before authentication or completion are bounded (issue 22): unauthenticated HTTP/2 connections
that open 200 streams each, announce a 4 MiB gRPC message on every one and send all of it but its last byte, as fast
as the windows let them, must not grow the server's memory past the pending-bytes budgets
(GRPC_MAX_PENDING_BYTES_PER_CONNECTION, GRPC_MAX_PENDING_BYTES) plus an allowance, and an honest grpcio client on a
connection of its own keeps getting answers meanwhile.

Floods: the health check (always open; it takes only a tiny message) with and without AUTH_TOKEN, /dtmgimp.Dtm/Submit
without a token (open: the budgets themselves), and Submit with a token set but not sent (refused on HEADERS, its body
never buffered); each from one and from five connections. After each flood an honest 3 MiB message still gets through,
so the budget came back when the flooding connections went away.
"""

import socket
import threading
import time

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

import grpc_harness as h

MIB = 1024 * 1024
PER_CONNECTION = 5 * MIB  # GRPC_MAX_PENDING_BYTES_PER_CONNECTION: a 4 MiB message fits, two do not
PER_PROCESS = 16 * MIB  # GRPC_MAX_PENDING_BYTES: five flooding connections exhaust it
WINDOW = 256 * 1024  # the server's connection window
# Memory besides the budget: the connection window and the unadmitted allowance of each connection, allocator slack,
# nghttp2's state for 200 streams per connection, thread stacks.
ALLOWANCE = 24 * MIB
ANNOUNCED = 4 * MIB  # = GRPC_MAX_MESSAGE_SIZE: within the message limit, so only the budgets can refuse it
STREAMS = 200
FLOOD_SECONDS = 5
TOKEN = "budget-token"
HEALTH = "/grpc.health.v1.Health/Check"
SUBMIT = "/dtmgimp.Dtm/Submit"


def _server(tmp_path_factory, name, extra):
    from conftest import private_dtm_server

    env = {"GRPC_MAX_PENDING_BYTES_PER_CONNECTION": str(PER_CONNECTION), "GRPC_MAX_PENDING_BYTES": str(PER_PROCESS),
           "HTTP_READ_TIMEOUT": "60"}  # longer than any flood: the read timeout must not be what frees memory
    env.update(extra)
    return private_dtm_server(tmp_path_factory, name, env)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    with _server(tmp_path_factory, "budget-open", {}) as server:
        yield server


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    with _server(tmp_path_factory, "budget-token", {"AUTH_TOKEN": TOKEN}) as server:
        yield server


def _rss_bytes(server):
    with open("/proc/%d/status" % server.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class FloodConnection:
    """One raw HTTP/2 connection (the `h2` library, non-blocking socket) with STREAMS streams, each announcing
    ANNOUNCED bytes and sending all but the last, as far as the server's windows allow."""

    def __init__(self, port, path, token=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setblocking(False)
        self.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.outbox = bytearray(self.conn.data_to_send())
        self.remaining = {}  # stream id -> bytes still to send
        self.prefix = b"\x00" + ANNOUNCED.to_bytes(4, "big")
        self.refusals = {}  # grpc-status -> count
        self.closed = False
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1"),
                   ("content-type", "application/grpc"), ("te", "trailers")]
        if token:
            headers.append(("authorization", "Bearer " + token))
        for i in range(STREAMS):
            sid = 1 + 2 * i
            self.conn.send_headers(sid, headers)
            self.remaining[sid] = len(self.prefix) + ANNOUNCED - 1
        self.chunk = b"x" * 16384
        self.sent_data = 0

    def step(self):
        """Reads what arrived, queues what the windows allow, writes what the socket takes; never blocks."""
        if self.closed:
            return
        try:
            while True:
                data = self.sock.recv(1 << 20)
                if not data:
                    self.closed = True
                    return
                for event in self.conn.receive_data(data):
                    self._event(event)
        except (BlockingIOError, InterruptedError):
            pass
        except (ConnectionResetError, h2.exceptions.ProtocolError):
            self.closed = True
            return
        if len(self.outbox) < 1 * MIB:
            self._queue_data()
        self.outbox += self.conn.data_to_send()
        try:
            while self.outbox:
                n = self.sock.send(self.outbox[:1 << 20])
                del self.outbox[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True

    def _event(self, event):
        if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
            status = dict(event.headers).get(b"grpc-status")
            if status is not None:
                self.refusals[status.decode()] = self.refusals.get(status.decode(), 0) + 1
        if isinstance(event, (h2.events.StreamReset, h2.events.StreamEnded)):
            self.remaining.pop(event.stream_id, None)

    def _queue_data(self):
        """Lowest stream first, each as far as its window goes: the order that makes a server hold the most (one
        stream at a time completes its message but the last byte)."""
        for sid in list(self.remaining):
            while self.remaining.get(sid, 0) > 0:
                left = self.remaining[sid]
                try:
                    window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
                except (h2.exceptions.StreamClosedError, KeyError):
                    self.remaining.pop(sid, None)
                    break
                if window <= 0:
                    break
                n = min(window, left)
                sent = len(self.prefix) + ANNOUNCED - 1 - left
                data = (self.prefix[sent:] + self.chunk)[:n] if sent < len(self.prefix) else self.chunk[:n]
                try:
                    self.conn.send_data(sid, data)
                except (h2.exceptions.StreamClosedError, h2.exceptions.FlowControlError, h2.exceptions.ProtocolError):
                    self.remaining.pop(sid, None)
                    break
                self.remaining[sid] = left - n
                self.sent_data += n

    def close(self):
        self.sock.close()


class HonestClient(threading.Thread):
    """A grpcio client on its own connection calling NewGid (and one Submit) throughout the flood."""

    def __init__(self, server, pb, token=None):
        super().__init__(daemon=True)
        self.server, self.pb = server, pb
        self.metadata = [("authorization", "Bearer " + token)] if token else None
        self.stop = threading.Event()
        self.answered, self.failures = 0, []
        self.channel = grpc.insecure_channel(server.grpc_target)
        self.stub = pb.DtmStub(self.channel)

    def run(self):
        submitted = False
        while not self.stop.is_set():
            try:
                if not submitted:
                    gid = h.new_gid("budget-honest")
                    req = h.saga_request(self.pb, gid, [{"action": "127.0.0.1:1/busi.Busi/TransOut",
                                                         "compensate": "127.0.0.1:1/busi.Busi/TransOutRevert"}], [b"{}"])
                    self.stub.Submit(req, timeout=5, metadata=self.metadata)
                    submitted = True
                else:
                    assert len(self.stub.NewGid(self.pb.Empty(), timeout=5, metadata=self.metadata).Gid) == 22
                self.answered += 1
            except Exception as e:  # noqa: BLE001  (any failure is the finding)
                self.failures.append(repr(e))
            self.stop.wait(0.3)

    def finish(self):
        self.stop.set()
        if self.is_alive():
            self.join(10)
        self.channel.close()


def _flood(server, pb, path, connections, limit, token_for_honest=None):
    """Floods; returns (peak RSS growth, flood connections, honest client). Stops early once growth passes `limit`
    (a server without budgets would otherwise take the machine's memory)."""
    time.sleep(0.5)
    before = _rss_bytes(server)
    honest = HonestClient(server, pb, token_for_honest)
    floods = []
    peak = 0
    try:
        honest.start()
        for _ in range(connections):
            floods.append(FloodConnection(server.grpc_port, path))
        until = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < until:
            for f in floods:
                f.step()
            peak = max(peak, _rss_bytes(server) - before)
            if peak > limit:
                break
            time.sleep(0.002)
    finally:
        honest.finish()
        for f in floods:
            f.close()
    return peak, floods, honest


def _large_message_still_admitted(server, pb, token=None):
    """After the flood, a 3 MiB message (a bad gid, so nothing is stored) is read completely and answered."""
    metadata = [("authorization", "Bearer " + token)] if token else None
    ch = grpc.insecure_channel(server.grpc_target, options=[("grpc.max_send_message_length", 8 * MIB)])
    try:
        req = h.saga_request(pb, "a;b", [{"action": "127.0.0.1:1/busi.Busi/TransOut", "compensate": ""}],
                             [b"x" * (3 * MIB)])
        with pytest.raises(grpc.RpcError) as err:
            pb.DtmStub(ch).Submit(req, timeout=10, metadata=metadata)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
    finally:
        ch.close()


def _report(peak, floods):
    sent = sum(f.sent_data for f in floods)
    refusals = {}
    for f in floods:
        for k, v in f.refusals.items():
            refusals[k] = refusals.get(k, 0) + v
    return "RSS grew by %.1f MiB; flood sent %.1f MiB of DATA; grpc-status of answers: %s" % (
        peak / MIB, sent / MIB, refusals)


@pytest.mark.parametrize("connections", [1, 5])
def test_open_submit_flood_is_held_to_the_budgets(open_server, pb, connections):
    budget = min(connections * PER_CONNECTION, PER_PROCESS)
    limit = budget + ALLOWANCE
    peak, floods, honest = _flood(open_server, pb, SUBMIT, connections, limit)
    print(_report(peak, floods))
    assert peak <= limit, _report(peak, floods)
    assert not honest.failures and honest.answered >= 3, (honest.answered, honest.failures[:3])
    assert sum(f.sent_data for f in floods) >= min(budget, connections * ANNOUNCED) // 2, \
        "the flood should have sent at least what the budgets admit: " + _report(peak, floods)
    _large_message_still_admitted(open_server, pb)


@pytest.mark.parametrize("connections", [1, 5])
def test_health_check_flood_is_refused_from_the_length_prefix(open_server, pb, connections):
    limit = ALLOWANCE
    peak, floods, honest = _flood(open_server, pb, HEALTH, connections, limit)
    print(_report(peak, floods))
    assert peak <= limit, _report(peak, floods)
    refused = sum(f.refusals.get(str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]), 0) for f in floods)
    assert refused == connections * STREAMS, _report(peak, floods)
    assert not honest.failures and honest.answered >= 3, (honest.answered, honest.failures[:3])
    _large_message_still_admitted(open_server, pb)


@pytest.mark.parametrize("path,code", [(HEALTH, grpc.StatusCode.RESOURCE_EXHAUSTED),
                                       (SUBMIT, grpc.StatusCode.UNAUTHENTICATED)], ids=["health", "submit"])
@pytest.mark.parametrize("connections", [1, 5])
def test_unauthenticated_flood_with_a_token_set_is_not_buffered(token_server, pb, connections, path, code):
    limit = ALLOWANCE
    peak, floods, honest = _flood(token_server, pb, path, connections, limit, token_for_honest=TOKEN)
    print(_report(peak, floods))
    assert peak <= limit, _report(peak, floods)
    refused = sum(f.refusals.get(str(code.value[0]), 0) for f in floods)
    assert refused == connections * STREAMS, _report(peak, floods)
    assert not honest.failures and honest.answered >= 3, (honest.answered, honest.failures[:3])
    _large_message_still_admitted(token_server, pb, TOKEN)
