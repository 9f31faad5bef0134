#!/usr/bin/env bash
# Allocations per saga: runs the coordinator (release, fresh SQLite file) with an LD_PRELOAD shim that counts
# malloc/calloc/realloc/aligned allocations (scripts/support/malloc_count.c, built here with gcc), drives it with
# dtm-bench, and prints the coordinator's allocations per completed saga. Unlike CPU time on this virtual
# machine, whose speed drifts by 2x between minutes, the count barely moves between runs, so it can tell whether a
# change removed allocations. It does not say whether that saved time: compare CPU with interleaved runs.
# Usage: [DTM_SERVER_BIN=path] scripts/alloc-count.sh [SECONDS=5] [dtm-bench options, default: --scenario grpc --clients 64]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
shift || true
args=("$@")
((${#args[@]})) || args=(--scenario grpc --clients 64)
# DTM_SERVER_BIN: count another build of the coordinator (an A/B against a binary of an earlier commit).
server=${DTM_SERVER_BIN:-}
if [[ -z "$server" ]]; then
  flock /tmp/swift-build.lock swift build -c release --product dtm-server >/dev/null
  server=.build/release/dtm-server
fi
flock /tmp/swift-build.lock swift build -c release --product dtm-bench >/dev/null
shim=.build/malloc_count.so
[[ $shim -nt scripts/support/malloc_count.c ]] || gcc -O2 -shared -fPIC -o "$shim" scripts/support/malloc_count.c
dir=$(mktemp -d)
http=$((20000 + RANDOM % 5000)); grpc=$((http + 1))
HTTP_PORT=$http GRPC_PORT=$grpc LISTEN_HOST=127.0.0.1 STORE_FILE="$dir/dtm.sqlite" LOG_LEVEL=warn LD_PRELOAD="$PWD/$shim" \
  "$server" >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/api/ping" >/dev/null && break; sleep 0.1; done
bench=(.build/release/dtm-bench --target "127.0.0.1:$grpc" --http-target "127.0.0.1:$http")
"${bench[@]}" --seconds 2 "${args[@]}" >/dev/null 2>&1  # warm-up: connections, statement cache, pools
kill -USR2 "$pid"; sleep 0.3
out=$("${bench[@]}" --seconds "$seconds" --pid "$pid" "${args[@]}" 2>&1)
kill -USR2 "$pid"; sleep 0.3
sagas=$(grep -oE '[0-9]+ of [0-9]+ accepted after' <<<"$out" | awk '{print $1}')
counts=($(grep '^mallocs' "$dir/server.log" | awk '{print $2}'))
((${#counts[@]} == 2)) || { echo "alloc-count.sh: the shim did not report (is gcc installed?)" >&2; exit 1; }
grep -E 'scenario:|coordinator:' <<<"$out"
echo "allocations: $((counts[1] - counts[0])) for $sagas completed sagas = $(((counts[1] - counts[0]) / sagas)) per saga"
