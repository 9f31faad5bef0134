"""A private PostgreSQL cluster for the interop and crash tests.

Debian's ``postgresql`` binaries (/usr/lib/postgresql/<newest>/bin), ``initdb`` into a temporary directory, the
server on a free loopback port, stopped by PID. As root both run as ``nobody`` (through ``setpriv``, which execs,
so the PID is the server's own), since the server refuses to run as root.

``shared_cluster()`` gives one cluster per Python process, stopped at exit. ``new_schema()`` names a fresh schema:
each swift-dtm server under test gets its own (the server creates it), as each gets its own SQLite file otherwise.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

LOOPBACK = "127.0.0.1"
NOBODY = 65534
USER = "dtm"


def _bin_dir():
    root = "/usr/lib/postgresql"
    versions = sorted(int(v) for v in os.listdir(root) if v.isdigit()) if os.path.isdir(root) else []
    if not versions:
        raise RuntimeError("PostgreSQL server not found in %s: install Debian's postgresql (scripts/setup.sh does)" % root)
    return "%s/%d/bin" % (root, versions[-1])


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class PostgresCluster:
    def __init__(self, base_dir=None, fsync=True):
        self.bin = _bin_dir()
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="swift-dtm-pg-", dir=base_dir or "/tmp")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.fsync = fsync
        self.proc = None
        if os.getuid() == 0:
            os.chown(self.dir, NOBODY, NOBODY)
        self._run("initdb", ["-D", self.data, "-U", USER, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"])

    def _cmd(self, program, args):
        path = os.path.join(self.bin, program)
        if os.getuid() == 0:
            return ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups", "--", path] + args
        return [path] + args

    def _run(self, program, args, check=True):
        r = subprocess.run(self._cmd(program, args), cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed: %s" % (program, r.stdout.decode(errors="replace")[-2000:]))
        return r

    def start(self, timeout=30.0):
        log = open(self.log_path, "ab")
        args = [
            "-D", self.data, "-p", str(self.port), "-k", self.dir, "-c", "listen_addresses=%s" % LOOPBACK,
            "-c", "max_connections=300", "-c", "shared_buffers=128MB", "-c", "fsync=%s" % ("on" if self.fsync else "off"),
        ]
        self.proc = subprocess.Popen(self._cmd("postgres", args), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._run("pg_isready", ["-h", LOOPBACK, "-p", str(self.port), "-U", USER, "-d", "postgres"], check=False).returncode == 0:
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited at start-up:\n%s" % self.log_tail())
            time.sleep(0.05)
        raise RuntimeError("postgres did not accept connections on port %d\n%s" % (self.port, self.log_tail()))

    def stop(self, mode="fast"):
        """mode: 'fast' (SIGINT: sessions ended, checkpoint, exit), 'smart' (SIGTERM) or 'immediate' (SIGQUIT)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal({"fast": signal.SIGINT, "smart": signal.SIGTERM, "immediate": signal.SIGQUIT}[mode])
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self, mode="fast"):
        self.stop(mode)
        return self.start()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def psql(self, sql, database="postgres"):
        """Runs SQL (psql -At, ON_ERROR_STOP) and returns its output; raises on error."""
        r = self._run(
            "psql", ["-h", LOOPBACK, "-p", str(self.port), "-U", USER, "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            check=False,
        )
        if r.returncode != 0:
            raise RuntimeError("psql failed: %s" % r.stdout.decode(errors="replace")[-2000:])
        return r.stdout.decode()

    def server_env(self, schema, database="postgres"):
        """The environment that points a swift-dtm server at this cluster."""
        return {
            "STORE_DRIVER": "postgres",
            "STORE_HOST": LOOPBACK,
            "STORE_PORT": str(self.port),
            "STORE_USER": USER,
            "STORE_DB": database,
            "STORE_SCHEMA": schema,
        }

    def log_tail(self, max_bytes=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-max_bytes:].decode(errors="replace")
        except OSError:
            return ""

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def new_schema():
    return "s_" + uuid.uuid4().hex


_shared = None


def shared_cluster():
    """One cluster per process, started on first use and removed at exit."""
    global _shared
    if _shared is None:
        _shared = PostgresCluster().start()
        atexit.register(_shared.destroy)
    return _shared


def store_under_test():
    """'postgres' or 'mysql' when DTM_TEST_STORE names it, else 'sqlite'."""
    store = os.environ.get("DTM_TEST_STORE", "")
    return store if store in ("postgres", "mysql") else "sqlite"
