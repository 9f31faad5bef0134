"""Short crash test: scripts/crash_test.py with 3 kill -9 rounds against the binary the other interop tests use
(DTM_SERVER_BIN, else <repo>/.build/debug/dtm-server — as in conftest.py).

The script starts its own server instances (fresh temp dir, SQLite store; or three coordinators on one schema of a
private PostgreSQL cluster, one of them killed each round), so this test does not use the session fixtures.  It proves that acknowledged sagas survive kill -9 and finish with correct saga semantics; on failure the
assertion message carries the script's full output (every violation with its branch calls and final query).

The load mixes HTTP and gRPC sagas (a third over gRPC), and 5 % of them have a first action that lasts 5 s (longer
than their retry_interval), which no other coordinator may call again while it runs.  The script falls back to HTTP only when grpcio /
grpcio-tools cannot be imported; this test runs it with its own interpreter and, when that interpreter has them
(the suite's venv does), requires gRPC sagas in the run.
"""

import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "crash_test.py"
BOUND_SECONDS = 130


def _server_binary():
    b = os.environ.get("DTM_SERVER_BIN")
    return Path(b) if b else REPO_ROOT / ".build" / "debug" / "dtm-server"


@pytest.mark.parametrize(
    "store_args",
    [[], ["--store", "postgres", "--coordinators", "3"]],
    ids=["sqlite", "postgres-3-coordinators"],
)
def test_crash_three_rounds(store_args):
    binary = _server_binary()
    assert binary.is_file() and os.access(binary, os.X_OK), (
        "dtm-server binary not found at %s; build it (swift build) or set DTM_SERVER_BIN" % binary
    )
    env = dict(os.environ, DTM_SERVER_BIN=str(binary))
    proc = subprocess.Popen(
        # 5 % of the sagas' first action takes 5 s: longer than their retry_interval of 1 s and the 1 s cron interval
        # (another coordinator would claim them mid-call without the lease), short enough for this bound.
        [sys.executable, str(SCRIPT), "3", "--natural-wait", "40", "--quiesce-timeout", "60", "--long-seconds", "5"] + store_args,
        cwd=str(REPO_ROOT),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the script and the servers it started
    )
    try:
        raw, _ = proc.communicate(timeout=BOUND_SECONDS)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the script stops its server and branch service in `finally`
        try:
            raw, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raw, _ = proc.communicate()
        raise AssertionError(
            "crash test did not finish within %d s; output:\n%s" % (BOUND_SECONDS, raw.decode("utf-8", "replace"))
        )
    out = raw.decode("utf-8", "replace")
    lines = out.strip().splitlines()
    assert proc.returncode == 0, "crash test failed (exit %d):\n%s" % (proc.returncode, out)
    assert lines and lines[-1].endswith(" passed, 0 failed"), out
    assert any(l.startswith("rounds=3 ") and "lost=0 stuck=0 violations=0 overlaps=0" in l for l in lines), out
    if _grpc_available():
        m = [re.search(r"grpc transactions=(\d+) acknowledged=(\d+) lost=0 stuck=0 violations=0", l)
             for l in lines if l.startswith("protocols: ")]
        assert m and m[-1] is not None, "no clean gRPC breakdown in the output:\n%s" % out
        assert int(m[-1].group(2)) > 0, "grpc is importable but no gRPC saga was acknowledged:\n%s" % out


def _grpc_available():
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("grpc", "grpc_tools", "google.protobuf"))
    except ImportError:  # no "google" package at all
        return False
