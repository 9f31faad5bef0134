"""TLS to PostgreSQL (issue 22): Store.SSLMode with libpq's names and Store.SSLRootCert (STORE_SSL_MODE,
STORE_SSL_ROOT_CERT). A private cluster with ssl=on and a pg_hba.conf that accepts TCP connections only over TLS
(`hostssl`), its certificate signed by a throwaway CA (openssl, in the test's tmp dir); the coordinator reaches it
with verify-full and that CA, and is refused with another CA and with `disable`.
"""

import os
import shutil
import subprocess
import time
import uuid

import pytest
import requests

import conftest
import pg_harness
import pki
from conftest import DtmServer, _server_binary

REFUSED_WAIT = 8.0  # a coordinator that cannot use the database must not be serving after this


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return {"pg": pki.make_ca(tmp_path_factory.mktemp("pki-pg"), "pg"),
            "other": pki.make_ca(tmp_path_factory.mktemp("pki-other"), "other")}


@pytest.fixture(scope="module")
def tls_cluster(certs):
    """A cluster that speaks TLS and accepts TCP clients only over it (local socket: trust, for psql setup)."""
    cluster = pg_harness.PostgresCluster()
    try:
        for name, source in (("server.crt", certs["pg"]["cert"]), ("server.key", certs["pg"]["key"])):
            target = os.path.join(cluster.data, name)
            shutil.copyfile(source, target)
            os.chmod(target, 0o600)
            if os.getuid() == 0:
                os.chown(target, pg_harness.NOBODY, pg_harness.NOBODY)
        with open(os.path.join(cluster.data, "postgresql.conf"), "a") as f:
            f.write("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        with open(os.path.join(cluster.data, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def server_env(cluster, mode, root_cert=None):
    env = cluster.server_env("s_" + uuid.uuid4().hex)
    env["STORE_SSL_MODE"] = mode
    if root_cert:
        env["STORE_SSL_ROOT_CERT"] = root_cert
    return env


def run_refused(tmp_path, monkeypatch, env):
    """Starts dtm-server with `env`; it must not serve within REFUSED_WAIT. Returns its log and its exit code (None:
    still waiting for the database when stopped)."""
    monkeypatch.setattr(conftest, "SERVER_READY_TIMEOUT", REFUSED_WAIT)
    server = DtmServer(_server_binary(), tmp_path, extra_env=env)
    server.store_env = {}
    try:
        with pytest.raises(RuntimeError):
            server.start()
        return server.log_tail(), server.proc.poll()
    finally:
        server.stop()


def psql(cluster, sslmode, sql):
    """psql over TCP with `sslmode` (the harness's psql runs as the cluster's user, without these settings)."""
    conninfo = "host=127.0.0.1 port=%d user=%s dbname=postgres sslmode=%s" % (cluster.port, pg_harness.USER, sslmode)
    return subprocess.run(["psql", conninfo, "-Atc", sql], capture_output=True, text=True, timeout=20)


def test_verify_full_with_the_ca_stores_over_tls_and_disable_is_refused(tls_cluster, certs, tmp_path, monkeypatch):
    r = psql(tls_cluster, "disable", "select 1")
    assert r.returncode != 0 and "no encryption" in r.stderr, "the cluster must refuse plain TCP: %s" % r.stderr
    server = DtmServer(_server_binary(), tmp_path, extra_env=server_env(tls_cluster, "verify-full", certs["pg"]["ca"]))
    server.store_env = {}
    server.start()
    try:
        gid = "pg-tls-" + uuid.uuid4().hex[:10]
        r = requests.post(server.api + "/prepare", json={"gid": gid, "trans_type": "tcc"}, timeout=10)
        assert r.status_code == 200, r.text
        assert server.query(gid)["transaction"]["status"] == "prepared"
        count = "select count(*) from pg_stat_ssl join pg_stat_activity using (pid) where application_name = 'swift-dtm' and %s"
        encrypted = psql(tls_cluster, "require", count % "ssl")
        assert encrypted.returncode == 0 and int(encrypted.stdout) >= 1, "the coordinator's connections should use TLS: %s" % (encrypted,)
        plain = psql(tls_cluster, "require", count % "not ssl")
        assert plain.returncode == 0 and int(plain.stdout) == 0, plain
    finally:
        server.stop()
    assert "sslmode=verify-full" in server.log_tail()

    (tmp_path / "disable").mkdir()
    log, code = run_refused(tmp_path / "disable", monkeypatch, server_env(tls_cluster, "disable"))
    assert code not in (None, 0), "a refused connection (pg_hba.conf) should stop start-up at once:\n%s" % log
    assert "no encryption" in log, log


def test_verify_full_with_another_ca_is_refused(tls_cluster, certs, tmp_path, monkeypatch):
    log, _ = run_refused(tmp_path, monkeypatch, server_env(tls_cluster, "verify-full", certs["other"]["ca"]))
    assert "postgres store open" not in log, log
    assert "certificate" in log.lower() or "handshake" in log.lower(), log
