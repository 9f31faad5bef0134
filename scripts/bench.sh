#!/usr/bin/env bash
# Builds release, starts the coordinator on a fresh SQLite file (synchronous=FULL, as in production) and
# drives it with dtm-bench; prints the figures, and h2load's NewGid rate as the machine's ceiling.
# Usage: scripts/bench.sh [SECONDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
clients=${2:-64}
flock /tmp/swift-build.lock swift build -c release --product dtm-server >/dev/null
flock /tmp/swift-build.lock swift build -c release --product dtm-bench >/dev/null
dir=$(mktemp -d)
http=$((20000 + RANDOM % 5000)); grpc=$((http + 1))
HTTP_PORT=$http GRPC_PORT=$grpc LISTEN_HOST=127.0.0.1 STORE_FILE="$dir/dtm.sqlite" LOG_LEVEL=warn \
  .build/release/dtm-server >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/api/ping" >/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for wait in false true; do
  .build/release/dtm-bench --target "127.0.0.1:$grpc" --clients "$clients" --seconds "$seconds" --wait-result "$wait" --pid "$pid"
  echo
done
if command -v h2load >/dev/null; then
  printf '\x00\x00\x00\x00\x00' > "$dir/empty.grpc"
  echo "ceiling: h2load gRPC NewGid:"
  h2load -n 200000 -c 8 -m 64 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' -d "$dir/empty.grpc" \
    "http://127.0.0.1:$grpc/dtmgimp.Dtm/NewGid" | grep -E 'finished in'
fi
