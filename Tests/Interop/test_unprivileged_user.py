"""The coordinator runs as an ordinary user: every socket option it sets must be one a process without privileges may
set (a TCP option set at the socket level once turned into SO_DEBUG, which needs CAP_NET_ADMIN, and every accepted
connection was closed). The rest of the suite runs as whoever runs pytest; as root, this test drops to `nobody`."""

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
import requests

import conftest as http_interop

NOBODY = 65534


@pytest.mark.skipif(os.getuid() != 0, reason="the whole suite already runs without privileges")
def test_serves_http_grpc_and_branch_calls_as_nobody(tmp_path, busi):
    # pytest's temporary directories are private to root: nobody's working directory is one of its own in /tmp.
    workdir = Path(tempfile.mkdtemp(prefix="swift-dtm-nobody-", dir="/tmp"))
    os.chown(workdir, NOBODY, NOBODY)
    wrapper = tmp_path / "as-nobody.sh"
    wrapper.write_text(
        "#!/bin/sh\nexec setpriv --reuid=%d --regid=%d --clear-groups -- %s \"$@\"\n"
        % (NOBODY, NOBODY, http_interop._server_binary().resolve())
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    server = http_interop.DtmServer(wrapper, workdir)
    if server.store_env.get("STORE_DRIVER") == "sqlite":
        server.store_env["STORE_FILE"] = str(workdir / "dtm.sqlite")
    server.start()  # waits for GET /api/ping over HTTP
    try:
        busi.on("TransOut", http_interop.Response(200, {"dtm_result": "SUCCESS"}))
        busi.on("TransIn", http_interop.Response(200, {"dtm_result": "SUCCESS"}))
        gid = requests.get(server.api + "/newGid", timeout=5).json()["gid"]
        body = {
            "gid": gid, "trans_type": "saga", "wait_result": True,
            "steps": [{"action": busi.url("TransOut"), "compensate": busi.url("TransOutRevert")},
                      {"action": busi.url("TransIn"), "compensate": busi.url("TransInRevert")}],
            "payloads": ['{"amount":30}', '{"amount":30}'],
        }
        r = requests.post(server.api + "/submit", json=body, timeout=10)
        assert r.status_code == 200, (r.status_code, r.text, server.log_tail())
        assert server.query(gid)["transaction"]["status"] == "succeed"
        # The process really runs as nobody.
        with open("/proc/%d/status" % server.proc.pid) as f:
            uid_line = next(line for line in f if line.startswith("Uid:"))
        assert uid_line.split()[1] == str(NOBODY), uid_line
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
