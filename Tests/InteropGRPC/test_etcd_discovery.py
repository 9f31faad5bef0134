"""go-zero service discovery over etcd (MicroService.Driver = dtm-driver-gozero), end to end with a real etcd.

The coordinator, configured with
    MICRO_SERVICE_DRIVER=dtm-driver-gozero
    MICRO_SERVICE_TARGET=etcd://127.0.0.1:<etcd>/dtmservice   (also discov://, several hosts, ?user=&password=)
    MICRO_SERVICE_END_POINT=127.0.0.1:<its gRPC port>
registers itself as go-zero's discov.Publisher does (lease of 10 s, key `dtmservice/<lease id in decimal>` =
EndPoint, kept alive, revoked on a graceful stop), and resolves gRPC branch URLs
`etcd://127.0.0.1:<etcd>/user.rpc/user.UserService/UserCreate` by reading (and watching) every key under
`user.rpc/`, calling the addresses round-robin. The business services here are grpcio servers registered in etcd
the way go-zero services register (etcd_harness.register); the client finds the coordinator in etcd, as a go-zero
client with `etcd://.../dtmservice` does, and submits with dtmgimp.Dtm/Submit.

Every test has its own etcd (free loopback ports, own data dir) and its own dtm-server; the logs of both are
attached to a failure report. They fail (they are not skipped) when /usr/bin/etcd is not installed.
"""

import contextlib
import os
import signal
import subprocess
import time

import grpc
import pytest

import etcd_harness as eh
import grpc_harness as h
from conftest import DtmClient, http_interop
from test_gozero_scenario import sign_user_choose_tag_req, user_create_req

COORDINATOR_KEY = "dtmservice"
TAG_KEY = "tag.rpc"
USER_KEY = "user.rpc"
TAG_SIGN = "/tag.TagSign/SignUserChooseTag"
TAG_REVERT = "/tag.TagSign/SignUserChooseTagRevert"
USER_CREATE = "/user.UserService/UserCreate"
USER_REVERT = "/user.UserService/UserCreateRevertLogin"

REGISTER_TIMEOUT = 10.0  # the coordinator's key must appear within this after it (or etcd) is up
REVOKE_TIMEOUT = 2.0  # graceful stop: the key must be gone within this after SIGTERM
EXPIRY_TIMEOUT = eh.GOZERO_TTL + 3.0  # kill -9: the key must expire within this
RE_REGISTER_TIMEOUT = 15.0  # etcd back (or appearing late): the key must be there again within this
WATCH_SETTLE = 1.0  # time given to the coordinator's watch to see a key change before the next saga


# ----------------------------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------------------------


def _add_diagnostic(request, label, text):
    request.node.__dict__.setdefault("_diagnostics", []).append((label, text))


@pytest.fixture
def etcd_factory(request, tmp_path_factory):
    """make_etcd(start=True) -> an EtcdServer of this test's own; stopped (with its keep-alives) after the test."""
    why = eh.etcd_available()
    if why:
        pytest.fail("etcd discovery tests need a local etcd (scripts/setup.sh installs Debian's etcd-server and "
                    "etcd-client): %s" % why, pytrace=False)
    created = []

    def make(start=True):
        server = eh.EtcdServer(tmp_path_factory.mktemp("etcd"))
        created.append(server)
        _add_diagnostic(request, "etcd %s log" % server.endpoint, server.log_tail)
        if start:
            try:
                server.start()
            except eh.EtcdError as e:
                pytest.fail("could not start etcd: %s" % e, pytrace=False)
        return server

    try:
        yield make
    finally:
        for server in created:
            server.close()


@pytest.fixture
def etcd(etcd_factory):
    return etcd_factory()


@pytest.fixture
def coordinator(request, tmp_path_factory):
    """make(etcd, target=None, env=None, start=True) -> a DtmServer using the go-zero driver; stopped after the test.

    Default target etcd://<etcd>/dtmservice; EndPoint = its own gRPC address; MAX_RETRY_INTERVAL=1 so branches
    that cannot be called yet are retried every second (with the sagas' retry_interval 1)."""
    created = []

    def make(etcd=None, target=None, env=None, start=True, name="dtm-gozero"):
        binary = http_interop._server_binary()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            pytest.fail("dtm-server binary not found or not executable at %s; build it (swift build) or set "
                        "DTM_SERVER_BIN" % binary, pytrace=False)
        server = http_interop.DtmServer(binary, tmp_path_factory.mktemp(name))
        server.extra_env.update({
            "MICRO_SERVICE_DRIVER": "dtm-driver-gozero",
            "MICRO_SERVICE_TARGET": target or "etcd://%s/%s" % (etcd.endpoint, COORDINATOR_KEY),
            "MICRO_SERVICE_END_POINT": server.grpc_target,
            "MAX_RETRY_INTERVAL": "1",
        })
        server.extra_env.update(env or {})
        created.append(server)
        _add_diagnostic(request, "%s log (gRPC %s)" % (name, server.grpc_target), server.log_tail)
        if start:
            try:
                server.start()
            except RuntimeError as e:
                pytest.fail("could not start dtm-server with %s: %s"
                            % ({k: v for k, v in server.extra_env.items() if k.startswith("MICRO")}, e),
                            pytrace=False)
        return server

    try:
        yield make
    finally:
        for server in created:
            server.stop()


@pytest.fixture
def gozero_services(grpc_services, etcd):
    """tag.rpc and user.rpc: two grpcio servers, each registered in etcd as a go-zero service registers."""
    tag = grpc_services("tag-rpc", services={"tag.TagSign"})
    user = grpc_services("user-rpc", services={"user.UserService"})
    eh.register(etcd, TAG_KEY, tag.target)
    eh.register(etcd, USER_KEY, user.target)
    return tag, user


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def discov_url(etcd, key, method, scheme="etcd"):
    """A go-zero branch URL: etcd://<etcd hosts>/<service key>/<pkg.Service>/<Method>."""
    return "%s://%s/%s/%s" % (scheme, etcd.endpoint, key, method.lstrip("/"))


def wait_registered(etcd, address, timeout=REGISTER_TIMEOUT, key=COORDINATOR_KEY, what="the coordinator"):
    """The one entry under `key`/ whose value is `address`; fails the test if none appears within `timeout`."""
    ok, found = eh.wait_for_entries(etcd, key, lambda es: any(e["value"] == address for e in es), timeout)
    assert ok, ("expected %s to register %s/<lease id> = %s in etcd %s within %.0f s; found %s"
                % (what, key, address, etcd.endpoint, timeout, found))
    return next(e for e in found if e["value"] == address)


def assert_gozero_entry(etcd, entry, address):
    """key `dtmservice/<lease id in decimal>` = EndPoint, attached to a live lease of go-zero's TTL."""
    assert entry["value"] == address, entry
    assert entry["lease"] != 0, "the key %s should be attached to a lease (go-zero's publisher): %s" % (
        entry["key"], entry)
    assert entry["key"] == "%s/%d" % (COORDINATOR_KEY, entry["lease"]), (
        "expected the key to be %s/<lease id in decimal> = %s/%d, got %r"
        % (COORDINATOR_KEY, COORDINATOR_KEY, entry["lease"], entry["key"]))
    granted, remaining = etcd.lease_ttl(entry["lease"])
    assert granted == eh.GOZERO_TTL, "expected a lease of %d s (go-zero's TimeToLive), got %d s" % (
        eh.GOZERO_TTL, granted)
    assert remaining > 0, "the lease %x should be alive, remaining TTL %d" % (entry["lease"], remaining)


def wait_gone(etcd, key_prefix, timeout):
    """(gone, seconds it took, last entries)."""
    start = time.monotonic()
    ok, found = eh.wait_for_entries(etcd, key_prefix, lambda es: not es, timeout)
    return ok, time.monotonic() - start, found


@contextlib.contextmanager
def coordinator_client(etcd, pb, key=COORDINATOR_KEY):
    """What a go-zero client with Target etcd://.../dtmservice does: look the coordinator up in etcd and dial it."""
    ok, found = eh.wait_for_entries(etcd, key, lambda es: bool(es), REGISTER_TIMEOUT)
    assert ok, "no coordinator registered under %s/ in etcd %s within %.0f s" % (key, etcd.endpoint,
                                                                                   REGISTER_TIMEOUT)
    target = found[0]["value"]
    ch = grpc.insecure_channel(target, options=h.CHANNEL_OPTIONS)
    try:
        grpc.channel_ready_future(ch).result(timeout=h.GRPC_READY_TIMEOUT)
    except grpc.FutureTimeoutError:
        ch.close()
        pytest.fail("the coordinator address found in etcd (%s) did not accept a gRPC connection" % target)
    try:
        yield DtmClient(pb.DtmStub(ch), ch, pb)
    finally:
        ch.close()


def gozero_steps(etcd, scheme="etcd"):
    """The go-zero scenario of test_gozero_scenario.py with etcd:// URLs: tag first, user second."""
    return [
        {"action": discov_url(etcd, TAG_KEY, TAG_SIGN, scheme),
         "compensate": discov_url(etcd, TAG_KEY, TAG_REVERT, scheme)},
        {"action": discov_url(etcd, USER_KEY, USER_CREATE, scheme),
         "compensate": discov_url(etcd, USER_KEY, USER_REVERT, scheme)},
    ]


def gozero_payloads(user_id=1001):
    return [sign_user_choose_tag_req(user_id, [3, 7, 300]), user_create_req(user_id, "13800000000", "gopher")]


def user_saga(pb, etcd, gid, user_id, wait_result=False, key=USER_KEY):
    """A one-step saga: UserCreate (compensate UserCreateRevertLogin) on the service registered under `key`."""
    steps = [{"action": discov_url(etcd, key, USER_CREATE), "compensate": discov_url(etcd, key, USER_REVERT)}]
    return h.saga_request(pb, gid, steps, [user_create_req(user_id, "1380000%04d" % user_id, "u%d" % user_id)],
                          wait_result=wait_result, retry_interval=1)


def action_calls(svc, gids):
    return [c for c in svc.calls() if c.gid in gids and c.op == "action"]


# ----------------------------------------------------------------------------------------------------------------
# The harness itself (no dtm-server needed)
# ----------------------------------------------------------------------------------------------------------------


def test_etcd_harness_registers_like_gozero(etcd):
    # register: key <prefix>/<lease id in decimal> = address, attached to a lease of 10 s, kept alive
    a = eh.register(etcd, USER_KEY, "127.0.0.1:1111")
    b = eh.register(etcd, USER_KEY, "127.0.0.1:2222")
    found = eh.entries(etcd, USER_KEY)
    assert sorted((e["key"], e["value"], e["lease"]) for e in found) == sorted([
        ("%s/%d" % (USER_KEY, a.lease_id), "127.0.0.1:1111", a.lease_id),
        ("%s/%d" % (USER_KEY, b.lease_id), "127.0.0.1:2222", b.lease_id),
    ]), found
    assert a.key == "%s/%d" % (USER_KEY, int(a.lease_hex, 16))
    assert etcd.lease_ttl(a.lease_id)[0] == eh.GOZERO_TTL
    assert sorted(eh.lookup(etcd, USER_KEY)) == ["127.0.0.1:1111", "127.0.0.1:2222"]
    assert eh.lookup(etcd, "user") == [], "lookup must read <key>/, not every key starting with the text"

    # the keep-alive renews the lease: its remaining TTL goes up again
    def renewed():
        first = etcd.lease_ttl(a.lease_id)[1]
        time.sleep(0.5)
        return etcd.lease_ttl(a.lease_id)[1] > first
    assert eh.wait_until(renewed, 8.0, interval=0), "the keep-alive process did not renew lease %s" % a.lease_hex

    # unregister = revoke: gone at once
    a.unregister()
    assert eh.lookup(etcd, USER_KEY) == ["127.0.0.1:2222"]

    # a crashed service's key expires after its TTL (a short one here)
    c = eh.register(etcd, TAG_KEY, "127.0.0.1:3333", ttl=2)
    c.crash()
    assert eh.lookup(etcd, TAG_KEY) == ["127.0.0.1:3333"]
    gone, took, last = wait_gone(etcd, TAG_KEY, 2 + 3)
    assert gone, "a key whose lease is no longer kept alive should expire after 2 s; still %s" % last

    # restart with the same data dir: keys and leases are still there (b still kept alive)
    etcd.restart()
    assert eh.lookup(etcd, USER_KEY) == ["127.0.0.1:2222"]
    # restart with a wiped data dir: nothing
    etcd.restart(wipe=True)
    assert eh.lookup(etcd, USER_KEY) == []
    b.crash()

    # auth: unauthenticated reads are refused, the harness authenticates
    etcd.enable_auth("root", "rootpw")
    d = eh.register(etcd, USER_KEY, "127.0.0.1:4444")
    assert eh.lookup(etcd, USER_KEY) == ["127.0.0.1:4444"]
    r = etcd.ctl("get", "--prefix", USER_KEY + "/", user=None, check=False)
    assert r.returncode != 0 and "user name is empty" in r.stderr, (r.returncode, r.stdout, r.stderr)
    d.unregister()
    assert eh.lookup(etcd, USER_KEY) == []


# ----------------------------------------------------------------------------------------------------------------
# The coordinator's registration (go-zero's Publisher)
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["etcd", "discov"])
def test_coordinator_registers_like_a_gozero_publisher_and_revokes_on_graceful_stop(etcd, coordinator, scheme):
    server = coordinator(etcd, target="%s://%s/%s" % (scheme, etcd.endpoint, COORDINATOR_KEY))
    entry = wait_registered(etcd, server.grpc_target)
    assert_gozero_entry(etcd, entry, server.grpc_target)
    assert len(eh.entries(etcd, COORDINATOR_KEY)) == 1, eh.entries(etcd, COORDINATOR_KEY)

    # kept alive: the lease's remaining TTL goes up again (go-zero's client renews at TTL/3)
    samples = []

    def renewed():
        samples.append(etcd.lease_ttl(entry["lease"])[1])
        return len(samples) > 1 and samples[-1] > samples[-2]
    assert eh.wait_until(renewed, 8.0, interval=0.5), (
        "the coordinator did not keep its lease %x alive; remaining TTL seen: %s" % (entry["lease"], samples))

    # graceful stop (SIGTERM): the lease is revoked, the key is gone at once
    server.proc.send_signal(signal.SIGTERM)
    gone, took, last = wait_gone(etcd, COORDINATOR_KEY, REVOKE_TIMEOUT)
    assert gone, ("after SIGTERM the coordinator should revoke its lease so that %s is gone within %.0f s; "
                  "still there: %s" % (entry["key"], REVOKE_TIMEOUT, last))
    server.proc.wait(timeout=10)


def test_coordinator_key_expires_after_kill_9(etcd, coordinator):
    server = coordinator(etcd)
    entry = wait_registered(etcd, server.grpc_target)
    server.proc.kill()
    server.proc.wait(timeout=10)
    assert [e["key"] for e in eh.entries(etcd, COORDINATOR_KEY)] == [entry["key"]], (
        "nothing can revoke the lease of a killed process; the key should stay until it expires")
    gone, took, last = wait_gone(etcd, COORDINATOR_KEY, EXPIRY_TIMEOUT)
    assert gone, "after kill -9 the key should expire with its %d s lease (within %.0f s); still there: %s" % (
        eh.GOZERO_TTL, EXPIRY_TIMEOUT, last)


def test_coordinator_stays_registered_across_an_etcd_restart(etcd, coordinator):
    server = coordinator(etcd)
    wait_registered(etcd, server.grpc_target)
    etcd.restart(downtime=1.0)  # same ports, same data dir
    back = time.monotonic()
    wait_registered(etcd, server.grpc_target, timeout=RE_REGISTER_TIMEOUT)
    # etcd restores leases with a fresh TTL on restart, so the old key alone proves nothing: it must outlive the
    # lease it had when etcd came back, kept alive or registered again.
    time.sleep(max(0.0, back + eh.GOZERO_TTL + 3.0 - time.monotonic()))
    entry = wait_registered(etcd, server.grpc_target, timeout=2.0)
    assert_gozero_entry(etcd, entry, server.grpc_target)
    assert len(eh.entries(etcd, COORDINATOR_KEY)) == 1, eh.entries(etcd, COORDINATOR_KEY)
    assert server.is_running(), server.log_tail()


def test_coordinator_registers_again_when_etcd_lost_its_data(etcd, coordinator):
    server = coordinator(etcd)
    wait_registered(etcd, server.grpc_target)
    etcd.restart(wipe=True)  # same ports, empty store: the lease and key are gone for good
    entry = wait_registered(etcd, server.grpc_target, timeout=RE_REGISTER_TIMEOUT)
    assert_gozero_entry(etcd, entry, server.grpc_target)
    assert server.is_running(), server.log_tail()


def test_coordinator_starts_without_etcd_and_registers_when_it_appears(etcd_factory, coordinator):
    etcd = etcd_factory(start=False)  # ports chosen, nothing listening yet
    server = coordinator(etcd)  # must be up (GET /api/ping) although etcd is unreachable
    assert server.is_running()
    time.sleep(1.0)
    etcd.start()
    entry = wait_registered(etcd, server.grpc_target, timeout=RE_REGISTER_TIMEOUT)
    assert_gozero_entry(etcd, entry, server.grpc_target)


def test_second_host_of_the_target_is_used_when_the_first_is_down(etcd, coordinator):
    closed = eh.free_ports(1)[0]
    target = "etcd://127.0.0.1:%d,%s/%s" % (closed, etcd.endpoint, COORDINATOR_KEY)
    server = coordinator(etcd, target=target)
    entry = wait_registered(etcd, server.grpc_target, timeout=RE_REGISTER_TIMEOUT)
    assert_gozero_entry(etcd, entry, server.grpc_target)


def test_another_driver_is_refused_at_start_up(tmp_path):
    binary = http_interop._server_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail("dtm-server binary not found at %s" % binary, pytrace=False)
    http_port, grpc_port, etcd_port = eh.free_ports(3)
    env = dict(os.environ)
    env.update(HTTP_PORT=str(http_port), GRPC_PORT=str(grpc_port), LISTEN_HOST="127.0.0.1", STORE_DRIVER="sqlite",
               STORE_FILE=str(tmp_path / "dtm.sqlite"), MICRO_SERVICE_DRIVER="dtm-driver-kratos",
               MICRO_SERVICE_TARGET="etcd://127.0.0.1:%d/%s" % (etcd_port, COORDINATOR_KEY),
               MICRO_SERVICE_END_POINT="127.0.0.1:%d" % grpc_port)
    try:
        r = subprocess.run([str(binary)], cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired as e:
        pytest.fail("dtm-server with MICRO_SERVICE_DRIVER=dtm-driver-kratos should refuse to start, but it was "
                    "still running after 20 s (stderr: %r)" % (e.stderr,))
    output = r.stdout + r.stderr
    assert r.returncode != 0, "expected a non-zero exit for an unsupported driver, got 0:\n%s" % output
    assert "dtm-driver-gozero" in output, (
        "the start-up error should name the supported driver dtm-driver-gozero:\n%s" % output)


# ----------------------------------------------------------------------------------------------------------------
# Sagas with etcd:// branch URLs
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["etcd", "discov"])
def test_gozero_saga_over_etcd_discovery_succeeds(etcd, coordinator, gozero_services, pb, scheme):
    tag, user = gozero_services
    server = coordinator(etcd)
    gid = h.new_gid("etcd-ok")
    payloads = gozero_payloads()
    with coordinator_client(etcd, pb) as dtm:
        dtm.Submit(h.saga_request(pb, gid, gozero_steps(etcd, scheme), payloads, retry_interval=1))
    q = server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == "succeed", q
    assert q["transaction"]["protocol"] == "grpc", q
    h.settle()

    tag_calls, user_calls = tag.calls(gid), user.calls(gid)
    assert h.summaries(tag_calls) == [(TAG_SIGN, "01", "action")], "expected one SignUserChooseTag call"
    assert h.summaries(user_calls) == [(USER_CREATE, "02", "action")], "expected one UserCreate call"
    assert tag_calls[0].request == payloads[0]
    assert user_calls[0].request == payloads[1]
    h.assert_dtm_metadata(tag_calls[0], gid, "saga", "01", "action", max_deadline=3)
    h.assert_dtm_metadata(user_calls[0], gid, "saga", "02", "action", max_deadline=3)
    assert tag_calls[0].time <= user_calls[0].time
    assert h.branch_rows(server.query(gid)) == [
        ("01", "compensate", "prepared"),
        ("01", "action", "succeed"),
        ("02", "compensate", "prepared"),
        ("02", "action", "succeed"),
    ]


def test_gozero_saga_over_etcd_discovery_compensates_in_reverse_order(etcd, coordinator, gozero_services, pb):
    tag, user = gozero_services
    server = coordinator(etcd)
    gid = h.new_gid("etcd-fail")
    user.on("UserCreate", h.aborted("mobile already registered"), gid=gid)
    payloads = gozero_payloads()
    with coordinator_client(etcd, pb) as dtm:
        dtm.Submit(h.saga_request(pb, gid, gozero_steps(etcd), payloads, retry_interval=1))
    q = server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == "failed", q
    assert "mobile already registered" in (q["transaction"].get("rollback_reason") or ""), q
    h.settle()

    everything = sorted(tag.calls(gid) + user.calls(gid), key=lambda c: c.time)
    assert [(c.service_label,) + c.summary() for c in everything] == [
        ("tag-rpc", TAG_SIGN, "01", "action"),
        ("user-rpc", USER_CREATE, "02", "action"),
        ("user-rpc", USER_REVERT, "02", "compensate"),
        ("tag-rpc", TAG_REVERT, "01", "compensate"),
    ], "expected both actions, then both compensations in reverse order"
    assert [c.request for c in everything] == [payloads[0], payloads[1], payloads[1], payloads[0]]
    assert h.branch_rows(server.query(gid)) == [
        ("01", "compensate", "succeed"),
        ("01", "action", "succeed"),
        ("02", "compensate", "succeed"),
        ("02", "action", "failed"),
    ]


def test_calls_are_spread_over_instances_and_a_removed_instance_gets_none(etcd, coordinator, grpc_services, pb):
    first = grpc_services("user-rpc-1", services={"user.UserService"})
    second = grpc_services("user-rpc-2", services={"user.UserService"})
    first_reg = eh.register(etcd, USER_KEY, first.target)
    eh.register(etcd, USER_KEY, second.target)
    coordinator(etcd)
    with coordinator_client(etcd, pb) as dtm:
        gids = []
        for i in range(10):
            gid = h.new_gid("etcd-rr%d" % i)
            gids.append(gid)
            dtm.Submit(user_saga(pb, etcd, gid, 2000 + i, wait_result=True))  # OK = succeeded
        calls_1, calls_2 = action_calls(first, gids), action_calls(second, gids)
        assert sorted(c.gid for c in calls_1 + calls_2) == sorted(gids), (
            "expected exactly one UserCreate per saga over both instances; got %s / %s" % (calls_1, calls_2))
        assert calls_1 and calls_2, ("expected the 10 calls to be spread over both registered instances; "
                                     "instance 1 got %d, instance 2 got %d" % (len(calls_1), len(calls_2)))

        # instance 1 leaves the registry (it keeps running, so a call to it would be seen)
        first_reg.unregister()
        assert eh.lookup(etcd, USER_KEY) == [second.target]
        time.sleep(WATCH_SETTLE)
        later = []
        for i in range(6):
            gid = h.new_gid("etcd-rm%d" % i)
            later.append(gid)
            dtm.Submit(user_saga(pb, etcd, gid, 3000 + i, wait_result=True))
    h.settle()
    assert action_calls(first, later) == [], "an instance whose key was removed from etcd was still called"
    assert sorted(c.gid for c in action_calls(second, later)) == sorted(later), (
        "every saga after the removal should have called the remaining instance once")


def test_a_branch_waits_for_a_service_that_registers_later(etcd, coordinator, grpc_services, pb):
    late = grpc_services("late-rpc", services={"user.UserService"})
    server = coordinator(etcd)
    gid = h.new_gid("etcd-late")
    with coordinator_client(etcd, pb) as dtm:
        dtm.Submit(user_saga(pb, etcd, gid, 4000, key="late.rpc"))
    time.sleep(2.5)  # a few cron rounds (retry_interval 1, MAX_RETRY_INTERVAL 1) with no address to call
    q = server.query(gid)
    assert q["transaction"]["status"] == "submitted", (
        "with no instance registered under late.rpc/ the saga should stay submitted (retried), not %s: %s"
        % (q["transaction"]["status"], q))
    assert late.calls(gid) == []

    eh.register(etcd, "late.rpc", late.target)
    q = server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == "succeed", q
    h.settle()
    assert h.summaries(late.calls(gid)) == [(USER_CREATE, "01", "action")], "expected one UserCreate once registered"


def test_etcd_with_authentication(etcd, coordinator, grpc_services, pb):
    etcd.enable_auth("root", "rootpw")
    r = etcd.ctl("get", "--prefix", "%s/" % COORDINATOR_KEY, user=None, check=False)
    assert r.returncode != 0, "etcd should refuse an unauthenticated read once auth is enabled"
    tag = grpc_services("tag-rpc", services={"tag.TagSign"})
    user = grpc_services("user-rpc", services={"user.UserService"})
    eh.register(etcd, TAG_KEY, tag.target)  # as root:rootpw (the harness authenticates once auth is on)
    eh.register(etcd, USER_KEY, user.target)
    target = "etcd://%s/%s?user=root&password=rootpw" % (etcd.endpoint, COORDINATOR_KEY)
    server = coordinator(etcd, target=target)
    entry = wait_registered(etcd, server.grpc_target)
    assert_gozero_entry(etcd, entry, server.grpc_target)

    # branch URLs carry no credentials; the coordinator uses the Target's for the same etcd hosts
    gid = h.new_gid("etcd-auth")
    with coordinator_client(etcd, pb) as dtm:
        dtm.Submit(h.saga_request(pb, gid, gozero_steps(etcd), gozero_payloads(), retry_interval=1))
    q = server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
    assert q["transaction"]["status"] == "succeed", q
    assert [c.name for c in tag.calls(gid) + user.calls(gid)] == ["SignUserChooseTag", "UserCreate"]


# ----------------------------------------------------------------------------------------------------------------
# BranchHostAllowList: the etcd host and every resolved address
# ----------------------------------------------------------------------------------------------------------------


def test_allow_list_refuses_an_etcd_host_not_listed(etcd, coordinator, grpc_services, pb):
    user = grpc_services("user-rpc", services={"user.UserService"})
    eh.register(etcd, USER_KEY, user.target)
    other = eh.free_ports(1)[0]
    allow = "127.0.0.1:%d,127.0.0.1:%d" % (etcd.client_port, user.port)
    server = coordinator(etcd, env={"BRANCH_HOST_ALLOW_LIST": allow})
    with coordinator_client(etcd, pb) as dtm:
        for hosts in ("127.0.0.1:%d" % other, "%s,127.0.0.1:%d" % (etcd.endpoint, other)):
            gid = h.new_gid("etcd-deny")
            url = "etcd://%s/%s/%s" % (hosts, USER_KEY, USER_CREATE.lstrip("/"))
            steps = [{"action": url, "compensate": ""}]
            request = h.saga_request(pb, gid, steps, [user_create_req(1, "1", "x")], retry_interval=1)
            h.expect_rpc_error(dtm.Submit, request, codes=grpc.StatusCode.INVALID_ARGUMENT,
                               contains="127.0.0.1:%d" % other)
            assert server.query(gid)["transaction"] is None, "a refused saga must not be stored"
        # the same service through the listed etcd host is fine
        gid = h.new_gid("etcd-allowed")
        dtm.Submit(user_saga(pb, etcd, gid, 5000, wait_result=True))
    assert [c.name for c in user.calls(gid)] == ["UserCreate"]


def test_allow_list_applies_to_resolved_addresses(etcd, coordinator, grpc_services, pb):
    allowed = grpc_services("user-rpc-allowed", services={"user.UserService"})
    stranger = grpc_services("user-rpc-not-listed", services={"user.UserService"})
    eh.register(etcd, USER_KEY, allowed.target)
    eh.register(etcd, USER_KEY, stranger.target)
    allow = "127.0.0.1:%d,127.0.0.1:%d" % (etcd.client_port, allowed.port)
    server = coordinator(etcd, env={"BRANCH_HOST_ALLOW_LIST": allow})
    gids = [h.new_gid("etcd-al%d" % i) for i in range(6)]
    with coordinator_client(etcd, pb) as dtm:
        for i, gid in enumerate(gids):
            dtm.Submit(user_saga(pb, etcd, gid, 6000 + i))
    for gid in gids:
        q = server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT)
        assert q["transaction"]["status"] == "succeed", (
            "with one allowed instance registered the saga should succeed through it: %s" % q)
    h.settle()
    assert stranger.calls() == [], (
        "an address resolved from etcd that is not in BRANCH_HOST_ALLOW_LIST (%s) was called: %s"
        % (stranger.target, stranger.calls()))
    assert sorted(c.gid for c in action_calls(allowed, gids)) == sorted(gids), (
        "each saga should have called the allowed instance exactly once")


def test_msg_query_prepared_is_resolved_through_etcd(etcd, coordinator, grpc_services, pb):
    """query_prepared of a gRPC msg is an etcd:// URL too: the check-back and the step both go to the instance found
    in etcd."""
    svc = grpc_services("user-rpc", services={"user.UserService"})
    eh.register(etcd, USER_KEY, svc.target)
    server = coordinator(etcd)
    gid = h.new_gid("etcd-msg")
    check = "/user.UserService/QueryPrepared"
    request = pb.DtmRequest(
        Gid=gid, TransType="msg", Steps=h.steps_json([{"action": discov_url(etcd, USER_KEY, USER_CREATE)}]),
        BinPayloads=[user_create_req(5000, "13800005000", "m")], QueryPrepared=discov_url(etcd, USER_KEY, check),
        TransOptions=h.trans_options(pb, timeout_to_fail=1, retry_interval=1))
    with coordinator_client(etcd, pb) as dtm:
        dtm.Prepare(request)  # never submitted: the coordinator must ask query_prepared
    q = server.wait_for_status(gid, timeout=h.FINAL_TIMEOUT + 5)
    assert q["transaction"]["status"] == "succeed", q
    h.settle()
    paths = [c.summary()[0] for c in sorted(svc.calls(gid), key=lambda c: c.time)]
    assert paths == [check, USER_CREATE], "expected the check-back, then the step, both resolved through etcd: %s" % paths


def test_values_in_etcd_that_are_not_host_port_are_never_called(etcd, coordinator, grpc_services, pb):
    """Whoever can write to etcd can write anything under a service's prefix: a URL with a path, user info, a huge
    value, an empty one. None of them is dialled; the saga goes to the one real instance."""
    svc = grpc_services("user-rpc", services={"user.UserService"})
    for i, junk in enumerate(["evil.example:1/p.S/M", "x@127.0.0.1:1", "a" * 5000 + ":1", "", "127.0.0.1",
                              "127.0.0.1:0", "http://127.0.0.1:1"]):
        etcd.ctl("put", "%s/junk%d" % (USER_KEY, i), junk)
    eh.register(etcd, USER_KEY, svc.target)
    server = coordinator(etcd)
    with coordinator_client(etcd, pb) as dtm:
        gids = []
        for i in range(4):
            gid = h.new_gid("etcd-junk%d" % i)
            gids.append(gid)
            dtm.Submit(user_saga(pb, etcd, gid, 6000 + i, wait_result=True))
    h.settle()
    assert sorted(c.gid for c in action_calls(svc, gids)) == sorted(gids), "every saga should reach the real instance"
    assert server.is_running(), "the coordinator must keep running"
