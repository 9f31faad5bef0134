"""A private MariaDB server for the interop and crash tests.

Debian's ``mariadb-server``: ``mariadb-install-db`` into a temporary directory, ``mariadbd`` on a free loopback port
with its socket in that directory, stopped by PID. As root both run as ``nobody`` (through ``setpriv``, which execs,
so the PID is the server's own). Coordinators connect over TCP as user ``dtm`` with a password.

``shared_server()`` gives one server per Python process, stopped at exit. ``new_database()`` names a fresh database:
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
PASSWORD = "dtm-test-pw"


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class MySQLServer:
    def __init__(self, base_dir=None, durable=True):
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="swift-dtm-mysql-", dir=base_dir or "/tmp")
        self.data = os.path.join(self.dir, "data")
        self.socket = os.path.join(self.dir, "mysqld.sock")
        self.log_path = os.path.join(self.dir, "mysqld.log")
        self.durable = durable
        self.proc = None
        self.user_created = False
        args = ["--no-defaults", "--datadir=" + self.data, "--auth-root-authentication-method=normal", "--skip-test-db"]
        if os.getuid() == 0:
            os.chown(self.dir, NOBODY, NOBODY)
            args.append("--user=nobody")
        self._run(["/usr/bin/mariadb-install-db"] + args, as_server=True)

    def _cmd(self, argv, as_server):
        if as_server and os.getuid() == 0:
            return ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups", "--"] + argv
        return argv

    def _run(self, argv, as_server=False, check=True):
        r = subprocess.run(self._cmd(argv, as_server), cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed: %s" % (argv[0], r.stdout.decode(errors="replace")[-2000:]))
        return r

    def start(self, timeout=60.0):
        args = [
            "/usr/sbin/mariadbd", "--no-defaults", "--datadir=" + self.data, "--port=%d" % self.port,
            "--bind-address=" + LOOPBACK, "--socket=" + self.socket, "--pid-file=" + os.path.join(self.dir, "mysqld.pid"),
            "--skip-name-resolve", "--log-error=" + self.log_path, "--max-connections=500", "--innodb-buffer-pool-size=256M",
            "--skip-log-bin", "--innodb-flush-log-at-trx-commit=%d" % (1 if self.durable else 2),
        ]
        self.proc = subprocess.Popen(self._cmd(args, True), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._run(self._client(["-e", "SELECT 1"]), check=False).returncode == 0:
                if not self.user_created:
                    self.sql("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'; GRANT ALL ON *.* TO '%s'@'%%'" % (USER, PASSWORD, USER))
                    self.user_created = True
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("mariadbd exited at start-up:\n%s" % self.log_tail())
            time.sleep(0.05)
        raise RuntimeError("mariadbd did not accept connections on port %d\n%s" % (self.port, self.log_tail()))

    def stop(self, mode="fast"):
        """mode: 'fast' (SIGTERM: normal shutdown) or 'kill' (SIGKILL: a crash; InnoDB recovers at the next start)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM if mode == "fast" else signal.SIGKILL)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self, mode="fast"):
        self.stop(mode)
        return self.start()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def _client(self, args):
        return ["/usr/bin/mariadb", "--no-defaults", "--socket=" + self.socket, "-uroot", "-N", "-B"] + args

    def sql(self, text, database=None):
        """Runs SQL as root over the private socket and returns its output (tab-separated, no column names)."""
        r = self._run(self._client(["-e", text] + ([database] if database else [])), check=False)
        if r.returncode != 0:
            raise RuntimeError("mariadb failed: %s" % r.stdout.decode(errors="replace")[-2000:])
        return r.stdout.decode()

    def server_env(self, database):
        """The environment that points a swift-dtm server at this server (DTM's variables)."""
        return {
            "STORE_DRIVER": "mysql",
            "STORE_HOST": LOOPBACK,
            "STORE_PORT": str(self.port),
            "STORE_USER": USER,
            "STORE_PASSWORD": PASSWORD,
            "STORE_DB": database,
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


def new_database():
    return "d_" + uuid.uuid4().hex


_shared = None


def shared_server():
    """One server per process, started on first use and removed at exit."""
    global _shared
    if _shared is None:
        _shared = MySQLServer().start()
        atexit.register(_shared.destroy)
    return _shared
