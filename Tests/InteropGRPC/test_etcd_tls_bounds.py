"""etcd for go-zero discovery, safe to expose (issue 22): TLS to etcd with a client certificate
(MicroService.EtcdCACertFile / EtcdCertFile / EtcdCertKeyFile, go-zero's discov.EtcdConf names), a cluster table
that made-up clusters named by branch URLs cannot fill, and entries too large for a registration dropped as they
arrive and counted in dtm_etcd_entries_dropped_total.

The etcd here is a real one on a free loopback port; the TLS one speaks only TLS on its client port and requires a
client certificate, all signed by a throwaway CA (openssl, in the test's tmp dir).
"""

import contextlib
import os
import re
import subprocess
import time

import grpc
import pytest
import requests

import etcd_harness as eh
import grpc_harness as h
import pki
from conftest import http_interop
from test_etcd_discovery import (COORDINATOR_KEY, USER_KEY, USER_CREATE, USER_REVERT, coordinator,  # noqa: F401 (fixtures)
                                 coordinator_client, etcd, etcd_factory, gozero_payloads, gozero_steps, gozero_services,
                                 user_saga, wait_registered, action_calls)
from test_gozero_scenario import user_create_req

NOT_REGISTERED_WAIT = 6.0  # a coordinator that cannot reach etcd must not be registered after this


@contextlib.contextmanager
def dtm_stub(server, pb):
    """A gRPC stub of `server`, dialled directly (not found through etcd)."""
    with grpc.insecure_channel(server.grpc_target, options=h.CHANNEL_OPTIONS) as ch:
        yield pb.DtmStub(ch)


class TLSEtcdServer(eh.EtcdServer):
    """An EtcdServer whose client port speaks only TLS and requires a client certificate signed by `ca`."""

    def __init__(self, workdir, certs):
        super().__init__(workdir)
        self.certs = certs
        self.client_url = "https://%s" % self.endpoint

    def command(self):
        return super().command() + ["--cert-file", self.certs["cert"], "--key-file", self.certs["key"],
                                    "--trusted-ca-file", self.certs["ca"], "--client-cert-auth"]

    def ctl_command(self, *args, user="default", endpoints=None):
        base = super().ctl_command(user=user, endpoints=endpoints)
        return base + ["--cacert", self.certs["ca"], "--cert", self.certs["client_cert"], "--key",
                       self.certs["client_key"]] + [str(a) for a in args]


@pytest.fixture
def certs(tmp_path_factory):
    return {"etcd": pki.make_ca(tmp_path_factory.mktemp("pki-etcd"), "etcd"),
            "other": pki.make_ca(tmp_path_factory.mktemp("pki-other"), "other")}


@pytest.fixture
def tls_etcd(tmp_path_factory, certs):
    server = TLSEtcdServer(tmp_path_factory.mktemp("etcd-tls"), certs["etcd"])
    try:
        server.start()
        yield server
    finally:
        server.close()


def etcd_tls_env(ca, client):
    return {"MICRO_SERVICE_ETCD_CA_CERT_FILE": ca, "MICRO_SERVICE_ETCD_CERT_FILE": client["client_cert"],
            "MICRO_SERVICE_ETCD_CERT_KEY_FILE": client["client_key"]}


def test_coordinator_reaches_etcd_over_tls_with_a_client_certificate_and_refuses_another_ca(
        tls_etcd, certs, coordinator, grpc_services, pb):
    plain = tls_etcd.ctl("endpoint", "health", check=False, endpoints="http://%s" % tls_etcd.endpoint)
    assert plain.returncode != 0, "the etcd under test must refuse plain connections"
    user = grpc_services("user-rpc", services={"user.UserService"})
    eh.register(tls_etcd, USER_KEY, user.target)

    # Trusting another CA: the coordinator does not accept etcd's certificate, registers nothing, calls nothing.
    stranger = coordinator(tls_etcd, env=etcd_tls_env(certs["other"]["ca"], certs["etcd"]), name="dtm-wrong-ca")
    gid_refused = h.new_gid("etcd-tls-refused")
    with dtm_stub(stranger, pb) as stub:
        stub.Submit(user_saga(pb, tls_etcd, gid_refused, 7100), timeout=h.CALL_TIMEOUT)
    ok, found = eh.wait_for_entries(tls_etcd, COORDINATOR_KEY, lambda es: bool(es), NOT_REGISTERED_WAIT)
    assert not ok, "a coordinator trusting another CA must not reach etcd, found %s" % found
    assert action_calls(user, [gid_refused]) == []
    assert stranger.query(gid_refused)["transaction"]["status"] == "submitted"
    stranger.stop()

    # The right CA and a client certificate: registration, resolution, the saga.
    server = coordinator(tls_etcd, env=etcd_tls_env(certs["etcd"]["ca"], certs["etcd"]))
    wait_registered(tls_etcd, server.grpc_target)
    gid = h.new_gid("etcd-tls")
    with coordinator_client(tls_etcd, pb) as dtm:
        dtm.Submit(user_saga(pb, tls_etcd, gid, 7101, wait_result=True))
    q = server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == "succeed", q
    assert [c.gid for c in action_calls(user, [gid])] == [gid]


@pytest.mark.parametrize("env, key", [
    ({"MICRO_SERVICE_ETCD_CERT_FILE": "/nonexistent/client.pem"}, "MicroService.EtcdCertFile"),
    ({"MICRO_SERVICE_ETCD_CA_CERT_FILE": "/nonexistent/ca.pem"}, "MicroService.EtcdCACertFile"),
    ({"STORE_SSL_MODE": "verify-everything"}, "Store.SSLMode"),
])
def test_bad_tls_settings_stop_start_up_naming_the_key(tmp_path, env, key):
    binary = http_interop._server_binary()
    http_port, grpc_port, etcd_port = eh.free_ports(3)
    run_env = dict(os.environ)
    run_env.update(HTTP_PORT=str(http_port), GRPC_PORT=str(grpc_port), LISTEN_HOST="127.0.0.1", STORE_DRIVER="sqlite",
                   STORE_FILE=str(tmp_path / "dtm.sqlite"), MICRO_SERVICE_DRIVER="dtm-driver-gozero",
                   MICRO_SERVICE_TARGET="etcd://127.0.0.1:%d/%s" % (etcd_port, COORDINATOR_KEY),
                   MICRO_SERVICE_END_POINT="127.0.0.1:%d" % grpc_port)
    run_env.update(env)
    try:
        r = subprocess.run([str(binary)], cwd=str(tmp_path), env=run_env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("dtm-server with %s should refuse to start, but it was still running after 20 s" % env)
    output = r.stdout + r.stderr
    assert r.returncode != 0, "expected a non-zero exit with %s:\n%s" % (env, output)
    assert key in output, "the start-up error should name %s:\n%s" % (key, output)


def test_made_up_clusters_do_not_block_a_real_one(etcd, coordinator, grpc_services, pb):
    user = grpc_services("user-rpc", services={"user.UserService"})
    eh.register(etcd, USER_KEY, user.target)
    server = coordinator(etcd)
    wait_registered(etcd, server.grpc_target)
    dead = eh.free_ports(20)
    with dtm_stub(server, pb) as stub:
        for i, port in enumerate(dead):
            url = "etcd://127.0.0.1:%d/made.up/user.UserService/UserCreate" % port
            steps = [{"action": url, "compensate": url}]
            stub.Submit(h.saga_request(pb, h.new_gid("etcd-madeup%d" % i), steps, [b"{}"], retry_interval=60),
                        timeout=h.CALL_TIMEOUT)
        time.sleep(1.0)  # their first rounds have run: 20 more clusters than fit, beside the Target's
        # The real etcd under a name of its own (a dead host first): a cluster not in the table yet.
        hosts = "127.0.0.1:%d,%s" % (eh.free_ports(1)[0], etcd.endpoint)
        steps = [{"action": "discov://%s/%s%s" % (hosts, USER_KEY, USER_CREATE),
                  "compensate": "discov://%s/%s%s" % (hosts, USER_KEY, USER_REVERT)}]
        gid = h.new_gid("etcd-real")
        stub.Submit(h.saga_request(pb, gid, steps, [user_create_req(7200, "13800007200", "u7200")], retry_interval=1),
                    timeout=h.CALL_TIMEOUT)
    q = server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == "succeed", q
    assert server.is_running()


def _dropped(server, reason):
    text = requests.get(server.base_url + "/api/metrics", timeout=5).text
    m = re.search(r'^dtm_etcd_entries_dropped_total\{reason="%s"\} ([0-9.e+]+)$' % reason, text, re.M)
    return float(m.group(1)) if m else None


def test_oversized_entries_are_dropped_counted_and_good_addresses_keep_working(etcd, coordinator, grpc_services, pb):
    user = grpc_services("user-rpc", services={"user.UserService"})
    eh.register(etcd, USER_KEY, user.target)
    etcd.ctl("put", "%s/huge-first" % USER_KEY, "b" * 3000)  # in the first read
    server = coordinator(etcd)
    with coordinator_client(etcd, pb) as dtm:
        gid1 = h.new_gid("etcd-big1")
        dtm.Submit(user_saga(pb, etcd, gid1, 7300, wait_result=True))
        assert server.wait_for_status(gid1, timeout=h.FINAL_TIMEOUT)["transaction"]["status"] == "succeed"
        assert _dropped(server, "value_too_long") == 1, "the oversized value of the first read should be counted"
        # Now under the watch: a value of 100 KB and a key of 300 bytes after the prefix.
        etcd.ctl("put", "%s/huge" % USER_KEY, "a" * 100_000)
        etcd.ctl("put", "%s/%s" % (USER_KEY, "k" * 300), user.target)
        ok = eh.wait_until(lambda: _dropped(server, "value_too_long") == 2 and _dropped(server, "key_too_long") == 1, 5)
        assert ok, requests.get(server.base_url + "/api/metrics", timeout=5).text
        gid2 = h.new_gid("etcd-big2")
        dtm.Submit(user_saga(pb, etcd, gid2, 7301, wait_result=True))
    assert server.wait_for_status(gid2, timeout=h.FINAL_TIMEOUT)["transaction"]["status"] == "succeed"
    assert sorted(c.gid for c in action_calls(user, [gid1, gid2])) == sorted([gid1, gid2])
    assert "etcd entries too large" in server.log_tail()
