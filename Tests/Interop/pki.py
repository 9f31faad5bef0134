"""A throwaway certificate authority made with openssl for TLS tests: a CA, a server certificate for 127.0.0.1 and
localhost (server and client usage: etcd's gateway dials its own port with it) and a client certificate. Every
file lives in the directory given (a pytest tmp dir, removed with it)."""

import os
import subprocess


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _issue(d, name, subject, extensions):
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", name + ".key", "-out", name + ".csr", cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write(extensions)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", name + ".ext", "-out", name + ".pem", cwd=d)
    os.chmod(os.path.join(d, name + ".key"), 0o600)


def make_ca(directory, name, client_cn="root"):
    """{ca, cert, key, client_cert, client_key}: paths of PEM files signed by a new CA called `name`."""
    d = str(directory)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=%s CA" % name,
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    _issue(d, "server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    _issue(d, "client", "/CN=%s" % client_cn, "extendedKeyUsage=clientAuth\n")
    return {k: os.path.join(d, f) for k, f in (("ca", "ca.pem"), ("cert", "server.pem"), ("key", "server.key"),
                                                ("client_cert", "client.pem"), ("client_key", "client.key"))}
