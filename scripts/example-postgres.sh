#!/usr/bin/env bash
# Several coordinators on one PostgreSQL database, by hand: starts a private PostgreSQL cluster, two coordinators
# on it (STORE_DRIVER=postgres, one schema; the first to start creates DTM's tables under an advisory lock) and a
# small HTTP branch service. Submits a saga to coordinator 1 and reads it back from coordinator 2; submits to
# coordinator 2 a saga whose first branch answers ONGOING once and lets the cron loops finish it; then kills
# coordinator 1 (kill -9) and shows coordinator 2 still answering, and the rows in dtm.trans_global. Loopback only;
# nothing is built (run `swift build` or scripts/setup.sh first). Everything it started is stopped on exit.
# Needs Debian's postgresql (/usr/lib/postgresql/<version>/bin; scripts/setup.sh installs it), curl and python3.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.build/release/dtm-server"; [ -x "$bin" ] || bin="$root/.build/debug/dtm-server"
[ -x "$bin" ] || { echo "no dtm-server in .build/release or .build/debug: build it first" >&2; exit 1; }
# shellcheck source=support/pg-cluster.sh
. "$root/scripts/support/pg-cluster.sh"
command -v curl >/dev/null && command -v python3 >/dev/null || { echo "curl and python3 are needed" >&2; exit 1; }

tmp="$(mktemp -d)"; pids=(); pg_pid=""
cleanup() {
  local rc=$?
  [ "$rc" = 0 ] || tail -n 15 "$tmp/dtm-1.log" "$tmp/dtm-2.log" "$tmp/pg/initdb.log" "$tmp/pg/postgres.log" 2>/dev/null || true
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done  # newest first, by PID
  [ -z "$pg_pid" ] || kill -INT "$pg_pid" 2>/dev/null || true  # the oldest: PostgreSQL's fast shutdown
  wait 2>/dev/null || true; rm -rf "$tmp"
}
trap cleanup EXIT
read -r PG_PORT HTTP_1 GRPC_1 HTTP_2 GRPC_2 SVC_PORT < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
wait_for() { for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "timed out: $*" >&2; exit 1; }

# 1. PostgreSQL: initdb and the server (scripts/support/pg-cluster.sh)
pg_cluster_start "$tmp/pg" "$PG_PORT"
echo "PostgreSQL $pgver on 127.0.0.1:$PG_PORT (user dtm, database postgres, data in $tmp/pg/data)"

# 2. two coordinators on the same database and schema, each on its own HTTP and gRPC port (the subshell execs,
#    so $! is the server's own PID)
http=("$HTTP_1" "$HTTP_2"); grpc=("$GRPC_1" "$GRPC_2")
for n in 1 2; do
  (cd "$tmp" && STORE_DRIVER=postgres STORE_HOST=127.0.0.1 STORE_PORT=$PG_PORT STORE_USER=dtm STORE_DB=postgres \
    STORE_SCHEMA=dtm HTTP_PORT=${http[n - 1]} GRPC_PORT=${grpc[n - 1]} LISTEN_HOST=127.0.0.1 TRANS_CRON_INTERVAL=1 \
    exec "$bin" >"$tmp/dtm-$n.log" 2>&1 </dev/null) & pids+=($!)
done
dtm1="${pids[0]}"
wait_for curl -sf "http://127.0.0.1:$HTTP_1/api/ping"
wait_for curl -sf "http://127.0.0.1:$HTTP_2/api/ping"
echo "coordinator 1 on 127.0.0.1:$HTTP_1 (gRPC $GRPC_1), coordinator 2 on 127.0.0.1:$HTTP_2 (gRPC $GRPC_2), schema dtm"

# 3. the branch service: 200 SUCCESS to TransOut, TransIn and their compensations; a path containing "Slow"
#    answers 425 ONGOING to its first call, then 200
python3 -u - "$SVC_PORT" <<'EOF' & pids+=($!)
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
KNOWN = {"TransOut", "TransIn", "TransOutRevert", "TransInRevert"}
seen, lock = set(), threading.Lock()
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # the readiness probe
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        name = url.path.rpartition("/api/busi/")[2]
        if not url.path.startswith("/api/busi/") or name.replace("Slow", "") not in KNOWN:
            code, result = 404, "FAILURE"
        else:
            with lock:
                first = "Slow" in name and url.path not in seen
                seen.add(url.path)
            code, result = (425, "ONGOING") if first else (200, "SUCCESS")
        print("  branch service: %s gid=%s op=%s branch=%s -> %d %s"
              % (url.path, q.get("gid"), q.get("op"), q.get("branch_id"), code, result))
        body = json.dumps({"dtm_result": result}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
EOF
busi="http://127.0.0.1:$SVC_PORT/api/busi"
wait_for curl -sf "http://127.0.0.1:$SVC_PORT/"
echo "branch service on 127.0.0.1:$SVC_PORT"

# 4. the client, with curl
new_gid() { curl -sf "http://127.0.0.1:$1/api/dtmsvr/newGid" | python3 -c 'import json, sys; print(json.load(sys.stdin)["gid"])'; }
saga() {  # gid out-action [wait_result]
  printf '{"gid":"%s","trans_type":"saga","steps":[{"action":"%s","compensate":"%s"},{"action":"%s","compensate":"%s"}],"payloads":["{\\"amount\\":30}","{\\"amount\\":30}"]%s}' \
    "$1" "$busi/$2" "$busi/TransOutRevert" "$busi/TransIn" "$busi/TransInRevert" "${3:+,\"wait_result\":true}"
}
submit() {
  local answer; answer="$(curl -sf -X POST -H 'Content-Type: application/json' -d "$2" "http://127.0.0.1:$1/api/dtmsvr/submit")"
  echo "  answer: $answer"
}
query() { curl -sf "http://127.0.0.1:$1/api/dtmsvr/query?gid=$2"; }
show() {  # port gid: status and branches as the coordinator on port reports them
  query "$1" "$2" | python3 -c 'import json, sys
a = json.load(sys.stdin)
t = a.get("transaction") or {}
print("status %s; branches: %s" % (t.get("status"), ", ".join("%s/%s=%s" % (b["branch_id"], b["op"], b["status"])
      for b in a.get("branches") or []) or "none"))'
}
status() { query "$1" "$2" | python3 -c 'import json, sys; print((json.load(sys.stdin).get("transaction") or {}).get("status"))'; }

gid1="$(new_gid "$HTTP_1")"
echo; echo "saga $gid1: submitted to coordinator 1 (wait_result)"
submit "$HTTP_1" "$(saga "$gid1" TransOut wait)"
echo "coordinator 2 reports $gid1: $(show "$HTTP_2" "$gid1")"

gid2="$(new_gid "$HTTP_2")"
echo; echo "saga $gid2: submitted to coordinator 2 (no wait_result); its first action answers ONGOING once"
submit "$HTTP_2" "$(saga "$gid2" TransOutSlow)"
start=$SECONDS; last=""
while :; do
  s1="$(status "$HTTP_1" "$gid2")"; s2="$(status "$HTTP_2" "$gid2")"
  now="coordinator 1 says $s1, coordinator 2 says $s2"
  [ "$now" = "$last" ] || echo "  after $((SECONDS - start)) s: $now"; last="$now"
  [ "$s1" = succeed ] && [ "$s2" = succeed ] && break
  [ $((SECONDS - start)) -lt 40 ] || { echo "saga $gid2 not succeed after 40 s" >&2; exit 1; }
  sleep 1
done
for n in 1 2; do  # the log line of the round that finished it
  if grep -q "gid=$gid2 .*status submitted -> succeed" "$tmp/dtm-$n.log"; then echo "  (finished by coordinator $n, per its log)"; fi
done
echo "coordinator 1 reports $gid2: $(show "$HTTP_1" "$gid2")"

# 5. coordinator 1 dies; coordinator 2 reads both from the database
echo; echo "kill -9 coordinator 1 (PID $dtm1)"
kill -9 "$dtm1"; wait "$dtm1" 2>/dev/null || true; pids=("${pids[@]:1}")  # reaped: not killed again
! curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$HTTP_1/api/ping" || { echo "coordinator 1 still answers" >&2; exit 1; }
echo "coordinator 2 reports $gid1: $(show "$HTTP_2" "$gid1")"
echo "coordinator 2 reports $gid2: $(show "$HTTP_2" "$gid2")"
rows="$(pg_run psql -h 127.0.0.1 -p "$PG_PORT" -U dtm -d postgres -v ON_ERROR_STOP=1 -At \
  -c "select gid, status, owner from dtm.trans_global")"
echo "psql: $(printf '%s\n' "$rows" | grep -c .) rows in dtm.trans_global (gid|status|owner):"
sed 's/^/  /' <<<"$rows"

# 6.
echo; echo "done: two coordinators shared one PostgreSQL schema; stopping everything"
