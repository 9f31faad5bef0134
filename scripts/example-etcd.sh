#!/usr/bin/env bash
# go-zero service discovery over etcd, by hand: starts etcd, the coordinator registered in it
# (MICRO_SERVICE_DRIVER=dtm-driver-gozero), a go-zero-like gRPC service registered as tag.rpc and user.rpc,
# then finds the coordinator in etcd and submits one saga with etcd:// branch URLs. Loopback only; nothing is
# built (run `swift build` or scripts/setup.sh first). Everything it started is stopped on exit.
# Needs etcd + etcdctl (Debian: etcd-server etcd-client) and the venv of scripts/setup.sh (grpcio).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.build/release/dtm-server"; [ -x "$bin" ] || bin="$root/.build/debug/dtm-server"
[ -x "$bin" ] || { echo "no dtm-server in .build/release or .build/debug: build it first" >&2; exit 1; }
py="$root/.venv/bin/python"; [ -x "$py" ] || py=python3
"$py" -c "import grpc, grpc_tools" 2>/dev/null || { echo "$py lacks grpcio/grpcio-tools: run scripts/setup.sh --no-build" >&2; exit 1; }
command -v etcd >/dev/null && command -v etcdctl >/dev/null || { echo "etcd/etcdctl not installed" >&2; exit 1; }

tmp="$(mktemp -d)"; pids=()
cleanup() {
  local rc=$?
  [ "$rc" = 0 ] || tail -n 15 "$tmp/dtm.log" "$tmp/etcd.log" 2>/dev/null || true
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done  # newest first, by PID
  wait 2>/dev/null || true; rm -rf "$tmp"
}
trap cleanup EXIT
read -r ETCD_PORT PEER_PORT HTTP_PORT GRPC_PORT SVC_PORT < <("$py" -c 'import socket
ss = [socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
export ETCDCTL_API=3
ctl() { etcdctl --endpoints "127.0.0.1:$ETCD_PORT" "$@"; }
wait_for() { for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "timed out: $*" >&2; exit 1; }

# 1. etcd
etcd --name default --data-dir "$tmp/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-cluster "default=http://127.0.0.1:$PEER_PORT" \
  >"$tmp/etcd.log" 2>&1 & pids+=($!)
wait_for ctl endpoint health
echo "etcd on 127.0.0.1:$ETCD_PORT"

# 2. the coordinator, registered as dtmservice/<lease id>
(cd "$tmp" && HTTP_PORT=$HTTP_PORT GRPC_PORT=$GRPC_PORT LISTEN_HOST=127.0.0.1 STORE_FILE="$tmp/dtm.sqlite" \
  MICRO_SERVICE_DRIVER=dtm-driver-gozero MICRO_SERVICE_TARGET="etcd://127.0.0.1:$ETCD_PORT/dtmservice" \
  MICRO_SERVICE_END_POINT="127.0.0.1:$GRPC_PORT" exec "$bin" >"$tmp/dtm.log" 2>&1) & pids+=($!)
wait_for "$py" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$HTTP_PORT/api/ping', timeout=1)"
registered() { [ -n "$(ctl get --prefix dtmservice/ --print-value-only)" ]; }
wait_for registered
echo "coordinator registered: $(ctl get --prefix dtmservice/ | paste -sd' ')"

# 3. a go-zero-like service (tag.TagSign + user.UserService), registered as go-zero's publisher does:
#    lease of 10 s, key <service>/<lease id in decimal> = host:port, kept alive
"$py" -u - "$SVC_PORT" <<'EOF' & pids+=($!)
import sys, time, grpc
from concurrent import futures
def handler(method):
    def call(request, context):
        md = dict(context.invocation_metadata())
        print("service: %s gid=%s op=%s (%d bytes)" % (method, md.get("dtm-gid"), md.get("dtm-op"), len(request)))
        return b""
    return grpc.unary_unary_rpc_method_handler(call, request_deserializer=None, response_serializer=None)
class AnyMethod(grpc.GenericRpcHandler):
    def service(self, details):
        return handler(details.method)
server = grpc.server(futures.ThreadPoolExecutor(4), handlers=[AnyMethod()])
server.add_insecure_port("127.0.0.1:%s" % sys.argv[1]); server.start()
while True: time.sleep(3600)
EOF
register() {
  local lease; lease=$(ctl lease grant 10 | awk '{print $2}')
  ctl put --lease="$lease" "$1/$((16#$lease))" "$2" >/dev/null
  etcdctl --endpoints "127.0.0.1:$ETCD_PORT" lease keep-alive "$lease" >/dev/null 2>&1 & pids+=($!)  # etcdctl's own PID
}
register tag.rpc "127.0.0.1:$SVC_PORT"
register user.rpc "127.0.0.1:$SVC_PORT"
echo "service registered: $(ctl get --prefix --keys-only tag.rpc/) $(ctl get --prefix --keys-only user.rpc/) -> 127.0.0.1:$SVC_PORT"

# 4. the client: find the coordinator in etcd, submit a saga with etcd:// branch URLs (WaitResult)
dtm="$(ctl get --prefix dtmservice/ --print-value-only | head -n1)"
"$py" -m grpc_tools.protoc -I "$root/Protos" --python_out="$tmp" --grpc_python_out="$tmp" dtmgimp.proto
"$py" - "$dtm" "127.0.0.1:$ETCD_PORT" "$tmp" "$HTTP_PORT" <<'EOF'
import json, sys, urllib.request
dtm, etcd, out, http_port = sys.argv[1:]
sys.path.insert(0, out)
import grpc, dtmgimp_pb2 as pb, dtmgimp_pb2_grpc as pbg
from google.protobuf import empty_pb2
url = lambda key, method: "etcd://%s/%s/%s" % (etcd, key, method)
steps = [{"action": url("tag.rpc", "tag.TagSign/SignUserChooseTag"), "compensate": url("tag.rpc", "tag.TagSign/SignUserChooseTagRevert")},
         {"action": url("user.rpc", "user.UserService/UserCreate"), "compensate": url("user.rpc", "user.UserService/UserCreateRevert")}]
with grpc.insecure_channel(dtm) as ch:
    stub = pbg.DtmStub(ch)
    gid = stub.NewGid(empty_pb2.Empty(), timeout=5).Gid
    print("submitting saga %s to the coordinator at %s:\n  %s" % (gid, dtm, "\n  ".join(s["action"] for s in steps)))
    stub.Submit(pb.DtmRequest(Gid=gid, TransType="saga", Steps=json.dumps(steps), BinPayloads=[b"\x08\x01", b"\x08\x01"],
                              TransOptions=pb.DtmTransOptions(WaitResult=True)), timeout=15)
answer = json.load(urllib.request.urlopen("http://127.0.0.1:%s/api/dtmsvr/query?gid=%s" % (http_port, gid), timeout=5))
print("result: %s; branches: %s" % (answer["transaction"]["status"],
      ", ".join("%s/%s=%s" % (b["branch_id"], b["op"], b["status"]) for b in answer["branches"])))
EOF
