"""A crash must not block the restart (issue 13, item 8): when the process dies of a fatal signal, its sockets are
closed before the Swift runtime's crash reporter starts printing the backtrace, so a supervisor can start the
server again on the same ports at once; and the crashed process does exit afterwards.
"""

import signal
import time

import pytest
import requests

from conftest import http_interop


def _restart_on_same_ports(crashed, workdir):
    again = http_interop.DtmServer(crashed.binary, workdir)
    again.store_env = crashed.store_env  # the same store: the SQLite file, or the PostgreSQL schema
    again.http_port, again.grpc_port = crashed.http_port, crashed.grpc_port
    again.base_url = "http://127.0.0.1:%d" % again.http_port
    again.api = again.base_url + "/api/dtmsvr"
    again.grpc_target = "127.0.0.1:%d" % again.grpc_port
    return again


@pytest.mark.parametrize("sig", [signal.SIGILL, signal.SIGSEGV])
def test_a_crashed_server_frees_its_ports_for_an_immediate_restart(tmp_path_factory, sig):
    first = http_interop.DtmServer(http_interop._server_binary(), tmp_path_factory.mktemp("crash-a"))
    first.start()
    second = None
    try:
        # An open client connection, as a load balancer's would be.
        session = requests.Session()
        assert session.get(first.base_url + "/api/ping", timeout=5).status_code == 200
        crashed_at = time.monotonic()
        first.proc.send_signal(sig)
        second = _restart_on_same_ports(first, tmp_path_factory.mktemp("crash-b"))
        # Start as a supervisor would: at once, on the same ports and the same store.
        deadline = crashed_at + 1.0
        while True:
            try:
                second.start()
                break
            except RuntimeError:
                second.stop()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        serving_after = time.monotonic() - crashed_at
        assert serving_after < 1.0 + 0.5, "the restarted server answered %.2f s after the crash" % serving_after
        assert requests.get(second.base_url + "/api/ping", timeout=5).json() == {"msg": "pong"}
        # The crashed process ends once its backtrace is written; it does not go on running without sockets.
        first.proc.wait(timeout=60)
        assert first.proc.returncode == -sig, first.log_tail()
        assert "Backtrac" in first.stderr_path.read_text(errors="replace")
        assert second.is_running()
    finally:
        first.stop()
        if second is not None:
            second.stop()
