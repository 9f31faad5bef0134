#!/usr/bin/env bash
# Draws docs/tracing-waterfall.png from a real run: starts the OTLP receiver of the tests
# (Tests/Interop/otlp_receiver.py) and a dtm-server exporting to it, runs one 2-step saga over HTTP (with a client
# traceparent) whose second branch answers 500 once, so the cron loop retries it after the back-off, dumps the
# trace's spans and draws them with scripts/trace-waterfall.py. Everything runs on 127.0.0.1 in a temporary
# directory that is removed at the end.
#
# Usage: scripts/trace-demo.sh [output.png]          (default docs/tracing-waterfall.png)
# Needs: the test venv (scripts/setup.sh --no-build), a dtm-server build that traces (DTM_SERVER_BIN, default
# .build/debug/dtm-server), and Pillow in a venv of its own, NOT the test venv (WF_PYTHON, default /tmp/wf/bin/python):
#   python3 -m venv /tmp/wf && /tmp/wf/bin/pip install pillow
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/docs/tracing-waterfall.png}"
wf_python="${WF_PYTHON:-/tmp/wf/bin/python}"
export DTM_SERVER_BIN="${DTM_SERVER_BIN:-$root/.build/debug/dtm-server}"
[ -x "$root/.venv/bin/python" ] || { echo "trace-demo: no test venv; run scripts/setup.sh --no-build" >&2; exit 1; }
[ -x "$DTM_SERVER_BIN" ] || {
  echo "trace-demo: no dtm-server at $DTM_SERVER_BIN (swift build, or set DTM_SERVER_BIN)" >&2
  exit 1
}
"$wf_python" -c "import PIL" 2>/dev/null || {
  echo "trace-demo: $wf_python has no Pillow (set WF_PYTHON, or:" \
    "python3 -m venv /tmp/wf && /tmp/wf/bin/pip install pillow)" >&2
  exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/trace-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT

PYTHONDONTWRITEBYTECODE=1 "$root/.venv/bin/python" - "$root" "$work" <<'PY'
import os
import sys
import time
import uuid

root, work = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(root, "Tests", "Interop"))
import conftest as interop  # noqa: E402  (DtmServer, BranchServer)
from otlp_receiver import OtlpReceiver  # noqa: E402
import requests  # noqa: E402

for name in list(os.environ):  # only what this demo sets configures tracing
    if name.startswith(("OTEL_", "TRACING_")):
        del os.environ[name]

trace_id, client_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
gid = "trace-demo-" + uuid.uuid4().hex[:8]
with OtlpReceiver() as receiver:
    busi = interop.BranchServer().start()
    server = interop.DtmServer(os.environ["DTM_SERVER_BIN"], work, extra_env=receiver.server_env(
        "http/protobuf", OTEL_SERVICE_NAME="dtm"))
    try:
        server.start()
        busi.on("TransIn", (500, "boom"), (200, {"dtm_result": "SUCCESS"}), gid=gid)
        steps = [{"action": busi.url(n), "compensate": busi.url(n + "Revert")} for n in ("TransOut", "TransIn")]
        body = {"gid": gid, "trans_type": "saga", "retry_interval": 1, "payloads": ['{"amount": 30}'] * 2,
                "steps": steps}
        r = requests.post(server.api + "/submit", json=body, timeout=10,
                          headers={"traceparent": "00-%s-%s-01" % (trace_id, client_span)})
        r.raise_for_status()
        status = server.wait_for_status(gid, ("succeed", "failed"), timeout=20)["transaction"]["status"]
        rounds = receiver.wait_for(lambda _: len(receiver.spans(trace_id, name="dtm.round")) >= 2 or None, 10)
        time.sleep(0.5)  # the last batch
    finally:
        server.stop()
        busi.stop()
    n = receiver.dump(os.path.join(work, "spans.jsonl"), trace_id)
    print("saga %s %s; %d spans of trace %s%s" % (gid, status, n, trace_id,
                                                  "" if rounds else " (fewer than 2 rounds: does this build trace?)"))
    with open(os.path.join(work, "trace_id"), "w") as f:
        f.write(trace_id)
PY

"$wf_python" "$root/scripts/trace-waterfall.py" "$work/spans.jsonl" --trace "$(cat "$work/trace_id")" -o "$out"
