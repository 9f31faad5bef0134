"""TLS, natively (issue 13, item 7): TLSCertFile / TLSKeyFile make the JSON API HTTPS and the gRPC port HTTP/2 over
TLS with ALPN h2; BranchTLSCAFile is the CA bundle that grpcs:// and https:// branches must chain to. Everything is
signed by a throwaway CA the test makes with openssl.
"""

import json
import os
import ssl
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
import requests

import grpc_harness as h
from conftest import http_interop


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(directory, name):
    """A CA, and a server certificate it signed for 127.0.0.1 and localhost."""
    d = str(directory)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=%s CA" % name,
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "san.ext", "-out", "server.pem", cwd=d)
    return {k: os.path.join(d, f) for k, f in (("ca", "ca.pem"), ("cert", "server.pem"), ("key", "server.key"))}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return {
        "dtm": _make_ca(tmp_path_factory.mktemp("pki-dtm"), "dtm"),
        "busi": _make_ca(tmp_path_factory.mktemp("pki-busi"), "busi"),
        "other": _make_ca(tmp_path_factory.mktemp("pki-other"), "other"),
    }


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, pki):
    env = {"TLS_CERT_FILE": pki["dtm"]["cert"], "TLS_KEY_FILE": pki["dtm"]["key"], "BRANCH_TLS_CA_FILE": pki["busi"]["ca"]}
    server = http_interop.DtmServer(http_interop._server_binary(), tmp_path_factory.mktemp("tls-dtm"), extra_env=env)
    server.base_url = "https://127.0.0.1:%d" % server.http_port
    server.api = server.base_url + "/api/dtmsvr"
    old = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = pki["dtm"]["ca"]  # the readiness probe and the helpers speak HTTPS
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if old is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = old


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def test_curl_talks_https_to_the_json_api(tls_server, pki):
    out = subprocess.run(
        ["curl", "-sS", "--cacert", pki["dtm"]["ca"], tls_server.base_url + "/api/ping"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"msg": "pong"}
    # A client that trusts another CA is refused by its own TLS check; plain HTTP gets no answer it can use.
    out = subprocess.run(
        ["curl", "-sS", "--cacert", pki["other"]["ca"], tls_server.base_url + "/api/ping"], capture_output=True, text=True, timeout=10)
    assert out.returncode != 0
    with pytest.raises(requests.RequestException):
        requests.get("http://127.0.0.1:%d/api/ping" % tls_server.http_port, timeout=3)
    assert requests.get(tls_server.base_url + "/api/ping", timeout=5).json() == {"msg": "pong"}


def test_grpcio_over_tls_with_a_grpcs_branch_service(tls_server, pki, pb):
    busi = h.GrpcBranchService("tls-busi", tls=(_read(pki["busi"]["key"]), _read(pki["busi"]["cert"]))).start()
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=_read(pki["dtm"]["ca"]))
        with grpc.secure_channel(tls_server.grpc_target, creds) as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            stub = pb.DtmStub(channel)
            gid = stub.NewGid(pb.Empty(), timeout=5).Gid
            steps = [
                {"action": "grpcs://%s/busi.Busi/TransOut" % busi.target, "compensate": "grpcs://%s/busi.Busi/TransOutRevert" % busi.target},
                {"action": "grpcs://%s/busi.Busi/TransIn" % busi.target, "compensate": "grpcs://%s/busi.Busi/TransInRevert" % busi.target},
            ]
            request = h.saga_request(pb, gid, steps, [b"{}", b"{}"], wait_result=True)
            stub.Submit(request, timeout=15)
        answer = tls_server.query(gid)
        assert answer["transaction"]["status"] == "succeed", answer
        assert [c.name for c in busi.calls(gid)] == ["TransOut", "TransIn"]
        # Plain h2c to the TLS port does not work.
        with grpc.insecure_channel(tls_server.grpc_target) as plain:
            with pytest.raises(grpc.RpcError):
                pb.DtmStub(plain).NewGid(pb.Empty(), timeout=3)
    finally:
        busi.stop()


def test_branches_signed_by_another_ca_are_not_trusted(tls_server, pki, pb):
    stranger = h.GrpcBranchService("tls-stranger", tls=(_read(pki["other"]["key"]), _read(pki["other"]["cert"]))).start()
    try:
        gid = "tls-" + uuid.uuid4().hex[:10]
        body = {"gid": gid, "trans_type": "saga", "payloads": ["{}"],
                "steps": [{"action": "grpcs://%s/busi.Busi/TransIn" % stranger.target, "compensate": ""}]}
        assert requests.post(tls_server.api + "/submit", json=body, timeout=5).status_code == 200
        time.sleep(1.5)
        assert stranger.calls(gid) == []
        assert tls_server.query(gid)["transaction"]["status"] == "submitted"
        # The log says why: the certificate, not just a closed connection.
        assert "CERTIFICATE_VERIFY_FAILED" in tls_server.stderr_path.read_text(errors="replace")
    finally:
        stranger.stop()


class _HTTPSBranch:
    """An HTTPS branch service answering SUCCESS, with the busi CA's certificate."""

    def __init__(self, cert, key):
        self.paths = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.paths.append(self.path)
                body = b'{"dtm_result":"SUCCESS"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_https_branches_trust_the_branch_ca(tls_server, pki):
    branch = _HTTPSBranch(pki["busi"]["cert"], pki["busi"]["key"])
    try:
        gid = "tlsh-" + uuid.uuid4().hex[:10]
        url = "https://127.0.0.1:%d/api/busi/TransIn" % branch.port
        body = {"gid": gid, "trans_type": "saga", "payloads": ["{}"], "steps": [{"action": url, "compensate": ""}], "wait_result": True}
        r = requests.post(tls_server.api + "/submit", json=body, timeout=10)
        assert r.status_code == 200, r.text
        assert any(p.startswith("/api/busi/TransIn?") for p in branch.paths)
    finally:
        branch.stop()
