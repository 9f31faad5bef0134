"""A real etcd for the service-discovery tests, and go-zero's registry conventions played with etcdctl.

* ``EtcdServer``: ``/usr/bin/etcd`` on free loopback ports (client + peer) with a data dir of its own; started,
  stopped (SIGTERM, then SIGKILL) and restarted by PID, with the same ports and data dir (or a wiped one). Its
  log is kept in the work dir (``log_tail()`` for failure reports). ``ctl(...)`` runs etcdctl (v3 API) against
  it with a timeout, with ``--user`` once ``enable_auth()`` has been called.
* ``register(etcd, key_prefix, address, ttl=10)``: what go-zero's ``discov.Publisher`` does: grant a lease of
  ``ttl`` seconds, put ``<key_prefix>/<lease id in decimal>`` = address with that lease, keep the lease alive
  (a background ``etcdctl lease keep-alive`` process). The handle can ``unregister()`` (revoke: the key is gone at
  once, as go-zero's ``Publisher.Stop``) or ``crash()`` (stop keeping alive: the key expires after the TTL).
* ``lookup(etcd, key_prefix)`` / ``entries(etcd, key_prefix)``: what go-zero's subscriber reads: every key under
  ``<key_prefix>/``.

Every subprocess call and wait here is bounded.
"""

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"
ETCD_BIN = os.environ.get("ETCD_BIN", "/usr/bin/etcd")
ETCDCTL_BIN = os.environ.get("ETCDCTL_BIN", "/usr/bin/etcdctl")
ETCD_READY_TIMEOUT = 20.0  # etcd must answer `endpoint health` within this after start
CTL_TIMEOUT = 10.0  # every etcdctl call
GOZERO_TTL = 10  # discov.TimeToLive


def etcd_available():
    """None when etcd and etcdctl are installed, else why not."""
    for b in (ETCD_BIN, ETCDCTL_BIN):
        if not (os.path.isfile(b) and os.access(b, os.X_OK)):
            return "%s is not installed (Debian: apt-get install etcd-server etcd-client)" % b
    return None


def free_ports(n):
    """n distinct currently free TCP ports on the loopback interface."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(predicate, timeout, interval=0.1):
    """Poll predicate() until it returns something truthy (returned) or `timeout` s pass (returns the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class EtcdError(RuntimeError):
    pass


class EtcdServer:
    """One etcd member (single-node cluster) on 127.0.0.1."""

    def __init__(self, workdir, name="default"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.client_port, self.peer_port = free_ports(2)
        self.endpoint = "%s:%d" % (LOOPBACK, self.client_port)  # what etcdctl --endpoints and etcd:// URLs name
        self.client_url = "http://%s" % self.endpoint
        self.peer_url = "http://%s:%d" % (LOOPBACK, self.peer_port)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "etcd.log"
        self.user = None  # "name:password" once auth is enabled
        self.proc = None
        self.starts = 0
        self._log = None
        self._keepalives = []  # background etcdctl processes started by register()

    # -- lifecycle -------------------------------------------------------------------------------------------

    def command(self):
        return [
            ETCD_BIN,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", "%s=%s" % (self.name, self.peer_url),
            "--initial-cluster-state", "new",
        ]

    def start(self, timeout=ETCD_READY_TIMEOUT):
        if self.is_running():
            raise EtcdError("etcd is already running (pid %d)" % self.proc.pid)
        self.starts += 1
        self._log = open(self.log_path, "ab")
        self._log.write(b"\n===== start #%d: %s\n" % (self.starts, " ".join(self.command()).encode()))
        self._log.flush()
        env = dict(os.environ)
        for var in [k for k in env if k.startswith("ETCD_")]:  # nothing from the environment configures it
            env.pop(var)
        self.proc = subprocess.Popen(self.command(), cwd=str(self.workdir), env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self._close_log()
                self.proc = None
                raise EtcdError("etcd exited with code %s before it was healthy\n%s" % (code, self.log_tail()))
            r = self.ctl("endpoint", "health", check=False, timeout=5, user=None)
            if r.returncode == 0:
                return self
            last = (r.stdout + r.stderr).strip()[-500:]
            if time.monotonic() >= deadline:
                self.stop()
                raise EtcdError("etcd on %s was not healthy within %.0f s (last: %s)\n%s"
                                % (self.endpoint, timeout, last, self.log_tail()))
            time.sleep(0.1)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stop etcd by its PID (`sig`, then SIGKILL after `timeout`). The data dir is kept."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._close_log()

    def kill(self):
        self.stop(sig=signal.SIGKILL)

    def restart(self, wipe=False, downtime=0.0):
        """Stop, optionally forget everything (a new data dir), wait `downtime` s, start again on the same ports."""
        self.stop()
        if wipe:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.user = None  # a fresh store has no users and no auth
        if downtime:
            time.sleep(downtime)
        return self.start()

    def close(self):
        """Stop every keep-alive process started by register(), then etcd."""
        for p in self._keepalives:
            _stop_process(p)
        self._keepalives = []
        self.stop()

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def _close_log(self):
        if self._log is not None:
            try:
                self._log.close()
            except OSError:
                pass
            self._log = None

    # -- etcdctl ------------------------------------------------------------------------------------------------

    def ctl(self, *args, check=True, timeout=CTL_TIMEOUT, user="default", endpoints=None):
        """Run `etcdctl --endpoints <this etcd> args...` (v3 API); raises EtcdError when check and it fails.
        `user`: "name:password", None for none; by default the credentials given to enable_auth()."""
        cmd = self.ctl_command(*args, user=user, endpoints=endpoints)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self._ctl_env(),
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise EtcdError("%s did not finish within %.0f s (stdout %r, stderr %r)"
                            % (" ".join(cmd), timeout, e.stdout, e.stderr))
        if check and r.returncode != 0:
            raise EtcdError("%s failed (%d): %s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
        return r

    def ctl_command(self, *args, user="default", endpoints=None):
        if user == "default":
            user = self.user
        cmd = [ETCDCTL_BIN, "--endpoints", endpoints or self.endpoint, "--dial-timeout", "3s",
               "--command-timeout", "5s"]
        if user:
            cmd += ["--user", user]
        return cmd + [str(a) for a in args]

    @staticmethod
    def _ctl_env():
        env = dict(os.environ)
        for var in [k for k in env if k.startswith("ETCDCTL_")]:
            env.pop(var)
        env["ETCDCTL_API"] = "3"
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                    "grpc_proxy"):
            env.pop(var, None)
        return env

    def enable_auth(self, user="root", password="rootpw"):
        """Add `user` (root: etcdctl grants it the root role) and turn authentication on; later ctl() calls
        authenticate as that user."""
        self.ctl("user", "add", "%s:%s" % (user, password), user=None)
        self.ctl("auth", "enable", user=None)
        self.user = "%s:%s" % (user, password)

    # -- data -----------------------------------------------------------------------------------------------

    def get_prefix(self, prefix):
        """[{key, value, lease}] of every key starting with `prefix` (lease 0 = none), in key order."""
        r = self.ctl("get", "--prefix", "-w", "json", "--", prefix)
        answer = json.loads(r.stdout)
        out = []
        for kv in answer.get("kvs") or []:
            out.append({
                "key": base64.b64decode(kv["key"]).decode("utf-8", "replace"),
                "value": base64.b64decode(kv.get("value") or b"").decode("utf-8", "replace"),
                "lease": int(kv.get("lease") or 0),
            })
        return out

    def lease_ttl(self, lease_id):
        """(granted TTL, remaining TTL) of a lease given as an int; remaining -1 when the lease is gone."""
        r = self.ctl("lease", "timetolive", "-w", "json", "%x" % lease_id)
        answer = json.loads(r.stdout)
        return int(answer.get("granted-ttl") or 0), int(answer.get("ttl") if answer.get("ttl") is not None else -1)

    # -- diagnostics --------------------------------------------------------------------------------------

    def log_tail(self, max_bytes=6000):
        try:
            if self._log is not None:
                self._log.flush()
            data = self.log_path.read_bytes()
        except OSError as e:
            return "(etcd log %s unreadable: %s)" % (self.log_path, e)
        cut = len(data) > max_bytes
        text = data[-max_bytes:].decode("utf-8", "replace")
        state = "running (pid %d)" % self.proc.pid if self.is_running() else "not running"
        return "--- etcd on %s, %s, log%s (%s):\n%s" % (self.endpoint, state, " (tail)" if cut else "",
                                                        self.log_path, text)

    def __repr__(self):
        return "EtcdServer(%s, data=%s)" % (self.endpoint, self.data_dir)


def _stop_process(p, timeout=5.0):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=timeout)


# ----------------------------------------------------------------------------------------------------------------
# go-zero's registry conventions
# ----------------------------------------------------------------------------------------------------------------

_GRANTED = re.compile(r"lease ([0-9a-f]+) granted with TTL\((\d+)s\)")


def _prefix(key_prefix):
    """go-zero's subscriber reads `<key>/` (internal.Delimiter)."""
    return key_prefix if key_prefix.endswith("/") else key_prefix + "/"


class Registration:
    """One service instance registered the way go-zero's discov.Publisher does it."""

    def __init__(self, etcd, key_prefix, address, lease_hex, ttl, keepalive):
        self.etcd = etcd
        self.key_prefix = key_prefix
        self.address = address
        self.lease_hex = lease_hex
        self.lease_id = int(lease_hex, 16)
        self.ttl = ttl
        self.key = "%s%d" % (_prefix(key_prefix), self.lease_id)  # makeEtcdKey(key, int64(lease))
        self._keepalive = keepalive

    def unregister(self):
        """Publisher.Stop: stop keeping alive and revoke the lease; the key is deleted with it at once."""
        self.crash()
        r = self.etcd.ctl("lease", "revoke", self.lease_hex, check=False)
        if r.returncode != 0 and "not found" not in (r.stdout + r.stderr):
            raise EtcdError("lease revoke %s failed: %s%s" % (self.lease_hex, r.stdout, r.stderr))

    def delete_key(self):
        """Delete only the key (the lease lives on, kept alive, holding nothing)."""
        self.etcd.ctl("del", "--", self.key)

    def crash(self):
        """The service dies without unregistering: nobody keeps the lease alive, the key expires after the TTL."""
        if self._keepalive is not None:
            _stop_process(self._keepalive)
            self._keepalive = None

    def keeping_alive(self):
        return self._keepalive is not None and self._keepalive.poll() is None

    def __repr__(self):
        return "Registration(%s = %s, lease %s)" % (self.key, self.address, self.lease_hex)


def register(etcd, key_prefix, address, ttl=GOZERO_TTL):
    """Grant a lease of `ttl` s, put `<key_prefix>/<lease decimal>` = `address` with it, keep it alive."""
    r = etcd.ctl("lease", "grant", ttl)
    m = _GRANTED.search(r.stdout)
    if m is None:
        raise EtcdError("unexpected `etcdctl lease grant` output: %r" % r.stdout)
    lease_hex = m.group(1)
    key = "%s%d" % (_prefix(key_prefix), int(lease_hex, 16))
    etcd.ctl("put", "--lease=%s" % lease_hex, "--", key, address)
    keepalive = subprocess.Popen(etcd.ctl_command("lease", "keep-alive", lease_hex), env=etcd._ctl_env(),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    etcd._keepalives.append(keepalive)
    return Registration(etcd, key_prefix, address, lease_hex, ttl, keepalive)


def entries(etcd, key_prefix):
    """[{key, value, lease}] under `<key_prefix>/`, as go-zero's subscriber sees them."""
    return etcd.get_prefix(_prefix(key_prefix))


def lookup(etcd, key_prefix):
    """The addresses (values) registered under `<key_prefix>/`."""
    return [e["value"] for e in entries(etcd, key_prefix)]


def wait_for_entries(etcd, key_prefix, predicate, timeout):
    """Poll entries(etcd, key_prefix) until predicate(entries) holds; returns (ok, last entries)."""
    last = []

    def check():
        nonlocal last
        try:
            last = entries(etcd, key_prefix)
        except EtcdError as e:  # e.g. etcd restarting
            last = [{"error": str(e)[-300:]}]
            return False
        return predicate(last)

    ok = wait_until(check, timeout)
    return bool(ok), last
