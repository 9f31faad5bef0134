"""Bad input at the transport level (issue 5, deliverable 3), against a dtm-server of its own with short timeouts:
slow-drip HTTP/1.1 requests (read and idle timeouts), a 100 MB body, 10,000 steps over HTTP and gRPC, too many
HTTP/2 streams, rapid stream resets, garbage HTTP/2 frames. Each gets a clear answer or a closed connection; the
server keeps serving; nothing is stored.
"""

import json
import socket
import threading
import time

import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
import requests

import grpc_harness as h

READ_TIMEOUT = 2  # HTTP_READ_TIMEOUT of the server under test
IDLE_TIMEOUT = 4  # HTTP_IDLE_TIMEOUT


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    from conftest import private_dtm_server

    with private_dtm_server(tmp_path_factory, "strict-dtm", {"HTTP_READ_TIMEOUT": str(READ_TIMEOUT), "HTTP_IDLE_TIMEOUT": str(IDLE_TIMEOUT)}) as server:
        yield server


@pytest.fixture(scope="module")
def strict_grpc(strict_server, pb):
    from conftest import dtm_stub

    with dtm_stub(strict_server, pb) as stub:
        yield stub


def _rss_kib(server):
    with open("/proc/%d/status" % server.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _stored_count(server):
    return len(requests.get(server.api + "/all", params={"limit": 10000}, timeout=5).json()["transactions"])


def _assert_serving(server, stub=None, pb=None):
    assert requests.get(server.base_url + "/api/ping", timeout=5).status_code == 200
    if stub is not None:
        assert len(stub.NewGid(pb.Empty(), timeout=5).Gid) == 22


def _closed_within(sock, seconds):
    """Seconds until the peer closed the connection (EOF or reset), or None if it stayed open."""
    sock.settimeout(0.2)
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - began
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - began
    return None


def _connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=5)


# ----------------------------------------------------------------------------------------------------------------
# HTTP/1.1


def test_slow_drip_request_head_is_cut_off_at_the_read_timeout(strict_server):
    s = _connect(strict_server.http_port)
    head = b"POST /api/dtmsvr/submit HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: " + b"a" * 200
    began = time.monotonic()
    closed = False
    try:
        for byte in head:  # one byte every 50 ms keeps the idle timer from ever firing
            s.sendall(bytes([byte]))
            time.sleep(0.05)
            if time.monotonic() - began > READ_TIMEOUT + 3:
                break
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    took = time.monotonic() - began
    if not closed:
        closed = _closed_within(s, 2) is not None
        took = time.monotonic() - began
    s.close()
    assert closed, "a request dripped byte by byte must not hold the connection"
    assert READ_TIMEOUT - 0.5 <= took <= READ_TIMEOUT + 3, took
    _assert_serving(strict_server)


def test_slow_drip_body_is_cut_off_and_nothing_is_stored(strict_server):
    before = _stored_count(strict_server)
    body = json.dumps({"gid": "drip-body", "trans_type": "saga", "steps": [], "payloads": []}).encode()
    s = _connect(strict_server.http_port)
    s.sendall(b"POST /api/dtmsvr/submit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
    waited = _closed_within(s, READ_TIMEOUT + 3)
    s.close()
    assert waited is not None and waited >= READ_TIMEOUT - 0.5, waited
    assert strict_server.query("drip-body")["transaction"] is None
    assert _stored_count(strict_server) == before


def test_idle_keep_alive_connection_is_closed_at_the_idle_timeout(strict_server):
    s = _connect(strict_server.http_port)
    s.sendall(b"GET /api/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200"), first
    waited = _closed_within(s, IDLE_TIMEOUT + 3)
    s.close()
    assert waited is not None and IDLE_TIMEOUT - 1 <= waited <= IDLE_TIMEOUT + 3, waited


def test_100_mb_body_is_refused_early_without_buffering_it(strict_server):
    rss_before = _rss_kib(strict_server)
    total = 100 * 1024 * 1024
    s = _connect(strict_server.http_port)
    s.sendall(b"POST /api/dtmsvr/submit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n{\"gid\":\"huge-body\",\"trans_type\":\"saga\",\"payloads\":[\"" % total)
    chunk = b"x" * (1024 * 1024)
    sent = 0
    try:
        while sent < total:
            s.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.settimeout(5)
    answer = b""
    try:
        while True:
            part = s.recv(65536)
            if not part:
                break
            answer += part
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    assert sent < total, "the server should stop reading long before 100 MB"
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"exceeds the limit" in answer, answer[-300:]
    assert _rss_kib(strict_server) - rss_before < 32 * 1024, "memory grew by more than 32 MiB"
    assert strict_server.query("huge-body")["transaction"] is None
    _assert_serving(strict_server)


def test_10000_steps_over_http_name_the_limit(strict_server):
    steps = [{"action": "http://127.0.0.1:1/a", "compensate": "http://127.0.0.1:1/c"}] * 10000
    r = requests.post(strict_server.api + "/submit", json={"gid": "ten-thousand-http", "trans_type": "saga",
                                                            "steps": steps, "payloads": ["{}"] * 10000}, timeout=10)
    assert r.status_code == 400, r.text
    assert "10000 steps; the limit is 1000" in r.json()["message"]
    assert strict_server.query("ten-thousand-http")["transaction"] is None


BAD_GIDS = [
    ("", "gid is missing or empty"),
    ("x" * 129, "gid is 129 bytes long; the limit is 128"),
    ('a"b', "gid contains the character '\"'"),
    ("a;b", "gid contains the character ';'"),
    ("a\nb", "gid contains the character 0xa"),
    ("a'b", "gid contains the character"),
]


@pytest.mark.parametrize("gid,message", BAD_GIDS)
def test_bad_gids_over_http_and_grpc(strict_server, strict_grpc, pb, gid, message):
    before = _stored_count(strict_server)
    r = requests.post(strict_server.api + "/submit", json={"gid": gid, "trans_type": "saga", "steps": []}, timeout=5)
    assert r.status_code == 400 and message in r.json()["message"], (r.status_code, r.text)
    with pytest.raises(grpc.RpcError) as err:
        strict_grpc.Submit(h.saga_request(pb, gid, [], []), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.value.details(), err.value.details()
    assert _stored_count(strict_server) == before


# ----------------------------------------------------------------------------------------------------------------
# gRPC / HTTP/2


def test_10000_steps_over_grpc_are_invalid_argument(strict_server, strict_grpc, pb):
    steps = [{"action": "127.0.0.1:1/busi.Busi/TransOut", "compensate": "127.0.0.1:1/busi.Busi/TransOutRevert"}] * 10000
    req = h.saga_request(pb, "ten-thousand-grpc", steps, [b""] * 10000)
    with pytest.raises(grpc.RpcError) as err:
        strict_grpc.Submit(req, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "10000 steps; the limit is 1000" in err.value.details()
    assert strict_server.query("ten-thousand-grpc")["transaction"] is None
    _assert_serving(strict_server, strict_grpc, pb)


def test_100_mb_grpc_message_is_resource_exhausted(strict_server, strict_grpc, pb):
    rss_before = _rss_kib(strict_server)
    req = h.saga_request(pb, "huge-grpc", [{"action": "", "compensate": ""}], [b"x" * (100 * 1024 * 1024)])
    with pytest.raises(grpc.RpcError) as err:
        strict_grpc.Submit(req, timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in err.value.details()
    assert _rss_kib(strict_server) - rss_before < 32 * 1024, "memory grew by more than 32 MiB"
    assert strict_server.query("huge-grpc")["transaction"] is None
    _assert_serving(strict_server, strict_grpc, pb)


class RawH2:
    """A client HTTP/2 connection driven frame by frame (the `h2` library), for what grpcio never sends."""

    def __init__(self, port):
        self.sock = _connect(port)
        self.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def headers(self, stream_id, end_stream=False):
        self.conn.send_headers(stream_id, [(":method", "POST"), (":scheme", "http"), (":path", "/dtmgimp.Dtm/NewGid"),
                                           (":authority", "127.0.0.1"), ("content-type", "application/grpc"),
                                           ("te", "trailers")], end_stream=end_stream)

    def events(self, seconds):
        """Every event received within `seconds` (stops early when the server closes)."""
        out = []
        self.sock.settimeout(0.2)
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except ConnectionResetError:
                break
            if not data:
                break
            try:
                out += self.conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                break
            self.flush()
        return out

    def close(self):
        self.sock.close()


def test_streams_beyond_max_concurrent_streams_are_refused(strict_server, strict_grpc, pb):
    c = RawH2(strict_server.grpc_port)
    events = c.events(0.5)
    settings = [e for e in events if isinstance(e, h2.events.RemoteSettingsChanged)]
    limit = settings[0].changed_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS].new_value
    assert limit == 1000
    # Pretend the server allowed more, then open limit + 50 streams that never finish their request.
    c.conn.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 10 * limit
    c.conn.remote_settings.acknowledge()  # h2 applies a setting once acknowledged
    for i in range(limit + 50):
        c.headers(1 + 2 * i)
    c.flush()
    events = c.events(2)
    refused = [e for e in events if isinstance(e, h2.events.StreamReset)
               and e.error_code == h2.errors.ErrorCodes.REFUSED_STREAM]
    goaway = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert len(refused) >= 50 or goaway, (len(refused), goaway)
    c.close()
    _assert_serving(strict_server, strict_grpc, pb)


def test_rapid_stream_resets_do_not_stop_the_server(strict_server, strict_grpc, pb):
    rss_before = _rss_kib(strict_server)
    c = RawH2(strict_server.grpc_port)
    c.events(0.3)
    stream = 1
    try:
        for _ in range(20):
            for _ in range(500):  # HEADERS then RST_STREAM at once, 10,000 in all (CVE-2023-44487's pattern)
                c.headers(stream)
                c.conn.reset_stream(stream)
                stream += 2
            c.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may give up on such a peer: fine, as long as it keeps serving others
    c.events(1)
    c.close()
    assert _rss_kib(strict_server) - rss_before < 32 * 1024
    _assert_serving(strict_server, strict_grpc, pb)


def test_garbage_frames_get_goaway_and_the_server_keeps_serving(strict_server, strict_grpc, pb):
    s = _connect(strict_server.grpc_port)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # preface, SETTINGS
              + b"\x00\x00\x08\x00\x01\x00\x00\x00\x00" + b"garbage!")  # DATA on stream 0: connection error
    received = b""
    s.settimeout(3)
    try:
        while True:
            part = s.recv(65536)
            if not part:
                break
            received += part
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    assert b"\x07\x00\x00\x00\x00\x00" in received, "expected a GOAWAY frame (type 7) on stream 0"
    _assert_serving(strict_server, strict_grpc, pb)


def test_grpc_request_dripped_after_its_headers_is_cancelled_at_the_read_timeout(strict_server, strict_grpc, pb):
    c = RawH2(strict_server.grpc_port)
    c.events(0.3)
    c.headers(1)
    c.flush()
    began = time.monotonic()
    ended = None
    message = b"\x00\x00\x00\x00\x10" + b"x" * 16  # a 16-byte message, sent a byte at a time
    for i in range(len(message)):
        c.conn.send_data(1, message[i:i + 1])
        c.flush()
        evs = c.events(0.25)
        done = [e for e in evs if isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset, h2.events.TrailersReceived,
                                                 h2.events.ResponseReceived))]
        headers = dict((k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                       for e in evs if isinstance(e, (h2.events.ResponseReceived, h2.events.TrailersReceived))
                       for k, v in e.headers)
        if done:
            ended = time.monotonic() - began
            break
    c.close()
    assert ended is not None, "the dripping stream was never cut off"
    assert READ_TIMEOUT - 0.5 <= ended <= READ_TIMEOUT + 2.5, ended
    assert headers.get("grpc-status") == str(grpc.StatusCode.CANCELLED.value[0]), headers
    assert "not received completely" in headers.get("grpc-message", ""), headers
    _assert_serving(strict_server, strict_grpc, pb)


def test_grpc_connection_without_handshake_is_closed(strict_server):
    s = _connect(strict_server.grpc_port)
    s.sendall(b"PRI * HTTP/2.0\r\n")  # half a preface, then nothing
    waited = _closed_within(s, READ_TIMEOUT + 3)
    s.close()
    assert waited is not None and READ_TIMEOUT - 1 <= waited <= READ_TIMEOUT + 2.5, waited


def test_idle_grpc_connection_gets_goaway(strict_server):
    c = RawH2(strict_server.grpc_port)
    evs = c.events(IDLE_TIMEOUT + 3)
    c.close()
    goaway = [e for e in evs if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway and goaway[0].error_code == h2.errors.ErrorCodes.NO_ERROR, evs


def test_slow_and_fast_clients_together(strict_server, strict_grpc, pb):
    """While slow-drip connections are open, normal requests are served at once."""
    drips = [_connect(strict_server.http_port) for _ in range(50)]
    for s in drips:
        s.sendall(b"POST /api/dtmsvr/submit HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    began = time.monotonic()
    for _ in range(20):
        _assert_serving(strict_server, strict_grpc, pb)
    assert time.monotonic() - began < 5
    for s in drips:
        s.close()
