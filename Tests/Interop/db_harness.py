"""What the private database servers of the interop and crash tests share (pg_harness.py, mysql_harness.py).

A server lives in a temporary directory of its own, listens on a free loopback port and is stopped by PID. As root
the server runs as ``nobody`` (through ``setpriv``, which execs, so the PID is the server's own), since database
servers refuse to run as root. Stdlib only: scripts/crash_test.py imports the harnesses without the test
requirements.
"""

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time

LOOPBACK = "127.0.0.1"
NOBODY = 65534


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def store_under_test():
    """'postgres' or 'mysql' when DTM_TEST_STORE names it, else 'sqlite'."""
    store = os.environ.get("DTM_TEST_STORE", "")
    return store if store in ("postgres", "mysql") else "sqlite"


class PrivateServer:
    """A database server in a temporary directory (``dir``, its data in ``data``, its log at ``log_path``).

    A subclass names its program (``PROGRAM``), how long it may take to start and to stop (``START_TIMEOUT``,
    ``STOP_TIMEOUT``), the signal of each stop mode (``STOP_SIGNALS``), and implements ``_server_argv`` (the command
    line), ``_accepts`` (whether it answers yet) and, if it needs one, ``_on_ready`` (set-up at each start).
    ``OUTPUT_TO_LOG`` sends the server's stdout and stderr to its log (for a server that does not write one itself).
    """

    PROGRAM = "server"
    START_TIMEOUT = 30.0
    STOP_TIMEOUT = 30
    STOP_SIGNALS = {}
    OUTPUT_TO_LOG = False

    def __init__(self, prefix, log_name, base_dir=None):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=prefix, dir=base_dir or "/tmp")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, log_name)
        self.proc = None
        if os.getuid() == 0:
            os.chown(self.dir, NOBODY, NOBODY)

    def _cmd(self, argv, as_server=True):
        if as_server and os.getuid() == 0:
            return ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups", "--"] + argv
        return argv

    def _run(self, argv, as_server=True, check=True):
        r = subprocess.run(self._cmd(argv, as_server), cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed: %s" % (os.path.basename(argv[0]), r.stdout.decode(errors="replace")[-2000:]))
        return r

    def _server_argv(self):
        raise NotImplementedError

    def _accepts(self):
        raise NotImplementedError

    def _on_ready(self):
        pass

    def start(self, timeout=None):
        """Starts the server (again, after ``stop``) and waits until it accepts connections."""
        if self.OUTPUT_TO_LOG:
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(self._cmd(self._server_argv()), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        else:
            self.proc = subprocess.Popen(
                self._cmd(self._server_argv()), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + (timeout or self.START_TIMEOUT)
        while time.monotonic() < deadline:
            if self._accepts():
                self._on_ready()
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited at start-up:\n%s" % (self.PROGRAM, self.log_tail()))
            time.sleep(0.05)
        raise RuntimeError("%s did not accept connections on port %d\n%s" % (self.PROGRAM, self.port, self.log_tail()))

    def stop(self, mode="fast"):
        """Sends the mode's signal (``STOP_SIGNALS``) and waits for the server to exit (SIGKILL if it does not)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(self.STOP_SIGNALS[mode])
        try:
            proc.wait(timeout=self.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self, mode="fast"):
        self.stop(mode)
        return self.start()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def log_tail(self, max_bytes=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-max_bytes:].decode(errors="replace")
        except OSError:
            return ""

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


_shared = {}


def shared(server_class):
    """One started server of the class per process, started on first use and removed at exit."""
    if server_class not in _shared:
        server = server_class().start()
        atexit.register(server.destroy)
        _shared[server_class] = server
    return _shared[server_class]
