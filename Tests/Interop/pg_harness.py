"""A private PostgreSQL cluster for the interop and crash tests.

Debian's ``postgresql`` binaries (/usr/lib/postgresql/<newest>/bin), ``initdb`` into a temporary directory, the
server on a free loopback port, stopped by PID; as root both run as ``nobody`` (what every private database server
shares is in db_harness.py).

``shared_cluster()`` gives one cluster per Python process, stopped at exit. ``new_schema()`` names a fresh schema:
each swift-dtm server under test gets its own (the server creates it), as each gets its own SQLite file otherwise.
"""

import os
import signal
import uuid

import db_harness
from db_harness import LOOPBACK, NOBODY, store_under_test  # noqa: F401  (part of this module's interface)

USER = "dtm"


def _bin_dir():
    root = "/usr/lib/postgresql"
    versions = sorted(int(v) for v in os.listdir(root) if v.isdigit()) if os.path.isdir(root) else []
    if not versions:
        raise RuntimeError("PostgreSQL server not found in %s: install Debian's postgresql (scripts/setup.sh does)" % root)
    return "%s/%d/bin" % (root, versions[-1])


class PostgresCluster(db_harness.PrivateServer):
    PROGRAM = "postgres"
    START_TIMEOUT = 30.0
    STOP_TIMEOUT = 30
    # 'fast' (sessions ended, checkpoint, exit), 'smart' (waits for the sessions) or 'immediate' (no checkpoint).
    STOP_SIGNALS = {"fast": signal.SIGINT, "smart": signal.SIGTERM, "immediate": signal.SIGQUIT}
    OUTPUT_TO_LOG = True

    def __init__(self, base_dir=None, fsync=True):
        self.bin = _bin_dir()
        super().__init__("swift-dtm-pg-", "postgres.log", base_dir)
        self.fsync = fsync
        self._run([self._program("initdb"), "-D", self.data, "-U", USER, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"])

    def _program(self, name):
        return os.path.join(self.bin, name)

    def _server_argv(self):
        return [
            self._program("postgres"), "-D", self.data, "-p", str(self.port), "-k", self.dir, "-c", "listen_addresses=%s" % LOOPBACK,
            "-c", "max_connections=300", "-c", "shared_buffers=128MB", "-c", "fsync=%s" % ("on" if self.fsync else "off"),
        ]

    def _accepts(self):
        argv = [self._program("pg_isready"), "-h", LOOPBACK, "-p", str(self.port), "-U", USER, "-d", "postgres"]
        return self._run(argv, check=False).returncode == 0

    def psql(self, sql, database="postgres"):
        """Runs SQL (psql -At, ON_ERROR_STOP) and returns its output; raises on error."""
        argv = [self._program("psql"), "-h", LOOPBACK, "-p", str(self.port), "-U", USER, "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]
        r = self._run(argv, check=False)
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


def new_schema():
    return "s_" + uuid.uuid4().hex


def shared_cluster():
    """One cluster per process, started on first use and removed at exit."""
    return db_harness.shared(PostgresCluster)
