"""A private MariaDB server for the interop and crash tests.

Debian's ``mariadb-server``: ``mariadb-install-db`` into a temporary directory, ``mariadbd`` on a free loopback port
with its socket in that directory, stopped by PID; as root both run as ``nobody`` (what every private database
server shares is in db_harness.py). Coordinators connect over TCP as user ``dtm`` with a password.

``shared_server()`` gives one server per Python process, stopped at exit. ``new_database()`` names a fresh database:
each swift-dtm server under test gets its own (the server creates it), as each gets its own SQLite file otherwise.
"""

import os
import signal
import uuid

import db_harness
from db_harness import LOOPBACK, NOBODY  # noqa: F401  (part of this module's interface)

USER = "dtm"
PASSWORD = "dtm-test-pw"


class MySQLServer(db_harness.PrivateServer):
    PROGRAM = "mariadbd"
    START_TIMEOUT = 60.0
    STOP_TIMEOUT = 60
    # 'fast' (normal shutdown) or 'kill' (a crash; InnoDB recovers at the next start).
    STOP_SIGNALS = {"fast": signal.SIGTERM, "kill": signal.SIGKILL}

    def __init__(self, base_dir=None, durable=True):
        super().__init__("swift-dtm-mysql-", "mysqld.log", base_dir)
        self.socket = os.path.join(self.dir, "mysqld.sock")
        self.durable = durable
        self.user_created = False
        args = ["--no-defaults", "--datadir=" + self.data, "--auth-root-authentication-method=normal", "--skip-test-db"]
        if os.getuid() == 0:
            args.append("--user=nobody")
        self._run(["/usr/bin/mariadb-install-db"] + args)

    def _server_argv(self):
        return [
            "/usr/sbin/mariadbd", "--no-defaults", "--datadir=" + self.data, "--port=%d" % self.port,
            "--bind-address=" + LOOPBACK, "--socket=" + self.socket, "--pid-file=" + os.path.join(self.dir, "mysqld.pid"),
            "--skip-name-resolve", "--log-error=" + self.log_path, "--max-connections=500", "--innodb-buffer-pool-size=256M",
            "--skip-log-bin", "--innodb-flush-log-at-trx-commit=%d" % (1 if self.durable else 2),
        ]

    def _accepts(self):
        return self._run(self._client(["-e", "SELECT 1"]), as_server=False, check=False).returncode == 0

    def _on_ready(self):
        if not self.user_created:
            self.sql("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'; GRANT ALL ON *.* TO '%s'@'%%'" % (USER, PASSWORD, USER))
            self.user_created = True

    def _client(self, args):
        return ["/usr/bin/mariadb", "--no-defaults", "--socket=" + self.socket, "-uroot", "-N", "-B"] + args

    def sql(self, text, database=None):
        """Runs SQL as root over the private socket and returns its output (tab-separated, no column names)."""
        r = self._run(self._client(["-e", text] + ([database] if database else [])), as_server=False, check=False)
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


def new_database():
    return "d_" + uuid.uuid4().hex


def shared_server():
    """One server per process, started on first use and removed at exit."""
    return db_harness.shared(MySQLServer)
