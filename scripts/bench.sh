#!/usr/bin/env bash
# Benchmark: builds release, starts the coordinator on a fresh SQLite file (synchronous=FULL, as in production)
# and drives it with dtm-bench (its own gRPC + HTTP/1.1 branch service on the loopback), then prints one table
# and the machine's ceiling (h2load against the coordinator's gRPC NewGid).
#
# Usage: scripts/bench.sh [--seconds S] [--clients N] [--rate R] [--open-clients N] [--store sqlite|postgres|mysql]
#                        [--coordinators N] [--compare 'COMMAND'] [S [N]]
#   --seconds S       seconds of load per scenario (default 10; a bare first number means the same)
#   --clients N       closed-loop clients per scenario (default 64; a bare second number means the same)
#   --rate R          sagas/s of the open-loop gRPC scenario (default 5000)
#   --open-clients N  most submits in flight in the open-loop scenario (default 1024)
#   --store STORE     sqlite (default: a fresh SQLite file) or postgres (a private PostgreSQL cluster on loopback,
#                     scripts/support/pg-cluster.sh, synchronous_commit on; the coordinators share one schema)
#                     or mysql (a private MariaDB server on loopback, mariadb-install-db into the temp dir, as nobody
#                     when root, innodb_flush_log_at_trx_commit=1: durable; the coordinators share one database)
#   --coordinators N  with postgres or mysql: N coordinators, each on its own ports; dtm-bench spreads the submits over them
#                     in turn and sums their CPU and memory (default 1)
#   --compare 'CMD'   also start another DTM-compatible server with CMD (run with `bash -c "exec CMD"` in an
#                     empty directory, environment HTTP_PORT and GRPC_PORT set to the ports it must listen on;
#                     DTM itself reads both) and run the same load against it; prints its rows and the ratios.
#                     CMD should exec one process (its CPU and memory are read from /proc by its PID), e.g.
#                     --compare '/usr/local/bin/dtm'  or  --compare 'dtm -c /path/conf.yml'.
# Scenarios: grpc and http submit (2 branches of the same protocol), each with wait_result false and true,
# closed loop; grpc open loop at --rate; for swift-dtm, when etcd is installed, grpc closed loop once more with
# the branch service registered in a private etcd and etcd:// branch URLs (go-zero discovery). Columns: completed sagas/s (last action reached the branch service,
# per gid), submit latency p50/p99/p999 ms (open loop: from the due time), submit→succeed p50/p99 ms, the
# server's CPU µs per completed saga and resident memory, a store check (gids sampled, found `succeed`), and the
# share of the machine's CPU the hypervisor stole during the scenario (/proc/stat; above a few % the figures of a
# virtual machine are not comparable with a quiet run).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10 clients=64 rate=5000 open_clients=1024 compare="" positional=0 store=sqlite coordinators=1
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --open-clients) open_clients=$2; shift 2 ;;
    --compare) compare=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    --coordinators) coordinators=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    [0-9]*) if ((positional == 0)); then seconds=$1; else clients=$1; fi; positional=$((positional + 1)); shift ;;
    *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

case "$store" in sqlite | postgres | mysql) ;; *) echo "bench.sh: --store sqlite, postgres or mysql" >&2; exit 2 ;; esac
if ((coordinators < 1)) || { ((coordinators > 1)) && [[ "$store" == sqlite ]]; }; then
  echo "bench.sh: --coordinators N needs N >= 1, and --store postgres or mysql for N > 1" >&2; exit 2
fi

flock /tmp/swift-build.lock swift build -c release --product dtm-server >/dev/null
flock /tmp/swift-build.lock swift build -c release --product dtm-bench >/dev/null
bench=.build/release/dtm-bench

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -z "${pg_pid:-}" ]] || { kill -INT "$pg_pid" 2>/dev/null || true; wait "$pg_pid" 2>/dev/null || true; }
  [[ -z "${my_pid:-}" ]] || { kill -TERM "$my_pid" 2>/dev/null || true; wait "$my_pid" 2>/dev/null || true; }
  rm -rf "$dir"
}
trap cleanup EXIT

# wait_ready HTTP_PORT PID NAME: until the HTTP API answers NewGid (both DTM and swift-dtm serve it).
wait_ready() {
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$1/api/dtmsvr/newGid" >/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "bench.sh: $3 exited at start-up" >&2; return 1; }
    sleep 0.1
  done
  echo "bench.sh: $3 did not answer on port $1" >&2; return 1
}

# run_scenarios SERVER HTTP_TARGETS GRPC_TARGETS PIDS [ETCD]: appends "SERVER<TAB>ROW fields" lines to $dir/rows.
# Targets and PIDs are comma-separated (several coordinators share the load). With ETCD (host:port), the gRPC
# closed-loop scenario runs once more with the branch service registered in etcd and etcd:// branch URLs, right
# after the one with direct addresses.
run_scenarios() {
  local server=$1 http=$2 grpc=$3 pid=$4 etcd=${5:-} args
  local via_etcd=()
  if [[ -n "$etcd" ]]; then via_etcd=("--scenario grpc --wait-result false --clients $clients --etcd $etcd"); fi
  for args in "--scenario grpc --wait-result false --clients $clients" \
              "${via_etcd[@]}" \
              "--scenario grpc --wait-result true --clients $clients" \
              "--scenario http --wait-result false --clients $clients" \
              "--scenario http --wait-result true --clients $clients" \
              "--scenario grpc --wait-result false --rate $rate --clients $open_clients"; do
    # shellcheck disable=SC2086
    "$bench" $args --target "$grpc" --http-target "$http" --seconds "$seconds" \
      --pid "$pid" --row >"$dir/out" 2>&1 || { echo "bench.sh: dtm-bench failed ($server: $args)" >&2; cat "$dir/out" >&2; }
    grep -v '^ROW' "$dir/out" | sed "s/^/[$server] /" >&2
    grep '^ROW' "$dir/out" | cut -f2- | sed "s/^/$server\t/" >>"$dir/rows" || true
  done
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2

# A private etcd (Debian's etcd-server) for the scenario with go-zero discovery; skipped when etcd is missing.
etcd=""
if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
  ec=$((30000 + RANDOM % 5000)); ep=$((ec + 1))
  etcd --name bench --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$ec" \
    --advertise-client-urls "http://127.0.0.1:$ec" --listen-peer-urls "http://127.0.0.1:$ep" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ep" --initial-cluster "bench=http://127.0.0.1:$ep" \
    >"$dir/etcd.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 100); do
    if ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$ec" endpoint health >/dev/null 2>&1; then etcd="127.0.0.1:$ec"; break; fi
    sleep 0.1
  done
  [[ -n "$etcd" ]] || echo "bench.sh: etcd did not start; the etcd:// scenario is skipped" >&2
else
  echo "bench.sh: etcd not installed (Debian: etcd-server etcd-client); the etcd:// scenario is skipped" >&2
fi

# swift-dtm on a fresh SQLite file, or N coordinators on one schema of a private PostgreSQL cluster.
store_env=(STORE_FILE="$dir/dtm.sqlite")
if [[ "$store" == postgres ]]; then
  # shellcheck source=support/pg-cluster.sh
  . scripts/support/pg-cluster.sh
  pgport=$((35000 + RANDOM % 5000))
  pg_cluster_start "$dir/pg" "$pgport" shared_buffers=256MB max_connections=200
  store_env=(STORE_DRIVER=postgres STORE_HOST=127.0.0.1 STORE_PORT="$pgport" STORE_USER=dtm STORE_DB=postgres STORE_SCHEMA=dtm)
  echo "PostgreSQL $pgver on 127.0.0.1:$pgport (synchronous_commit on), $coordinators coordinator(s)" >&2
elif [[ "$store" == mysql ]]; then
  # A private MariaDB on loopback: its own data directory and socket in $dir, as nobody when root (mariadbd refuses
  # root); durable (innodb_flush_log_at_trx_commit=1; no binary log, as a single server would run).
  myport=$((40000 + RANDOM % 5000)) run_as=() install_user=()
  mkdir "$dir/mysql"
  if ((EUID == 0)); then
    chmod 755 "$dir"; chown nobody:nogroup "$dir/mysql"
    run_as=(setpriv --reuid=65534 --regid=65534 --clear-groups --) install_user=(--user=nobody)
  fi
  "${run_as[@]}" mariadb-install-db --no-defaults --datadir="$dir/mysql/data" --auth-root-authentication-method=normal \
    --skip-test-db "${install_user[@]}" >"$dir/mysql-install.log" 2>&1
  "${run_as[@]}" mariadbd --no-defaults --datadir="$dir/mysql/data" --port="$myport" --bind-address=127.0.0.1 \
    --socket="$dir/mysql/mysqld.sock" --pid-file="$dir/mysql/mysqld.pid" --log-error="$dir/mysql/mysqld.log" \
    --skip-name-resolve --skip-log-bin --max-connections=500 --innodb-buffer-pool-size=512M \
    --innodb-flush-log-at-trx-commit=1 &
  my_pid=$!
  for _ in $(seq 300); do
    mariadb --no-defaults --socket="$dir/mysql/mysqld.sock" -uroot -e "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.1
  done
  mariadb --no-defaults --socket="$dir/mysql/mysqld.sock" -uroot \
    -e "CREATE USER 'dtm'@'%' IDENTIFIED BY 'dtm-bench'; GRANT ALL ON *.* TO 'dtm'@'%'"
  store_env=(STORE_DRIVER=mysql STORE_HOST=127.0.0.1 STORE_PORT="$myport" STORE_USER=dtm STORE_PASSWORD=dtm-bench STORE_DB=dtm)
  myver=$(mariadb --no-defaults --socket="$dir/mysql/mysqld.sock" -uroot -N -B -e "SELECT version()")
  echo "MariaDB $myver on 127.0.0.1:$myport (innodb_flush_log_at_trx_commit=1), $coordinators coordinator(s)" >&2
fi
http_targets="" grpc_targets="" server_pids="" first_grpc=""
for n in $(seq "$coordinators"); do
  http=$((20000 + RANDOM % 5000)); grpc=$((http + 1))
  env HTTP_PORT=$http GRPC_PORT=$grpc LISTEN_HOST=127.0.0.1 "${store_env[@]}" LOG_LEVEL=warn \
    MICRO_SERVICE_DRIVER=dtm-driver-gozero .build/release/dtm-server >"$dir/server-$n.log" 2>&1 &
  pid=$!; pids+=("$pid")
  wait_ready "$http" "$pid" "swift-dtm $n"
  http_targets+="${http_targets:+,}127.0.0.1:$http"; grpc_targets+="${grpc_targets:+,}127.0.0.1:$grpc"
  server_pids+="${server_pids:+,}$pid"; first_grpc=${first_grpc:-$grpc}
done
run_scenarios swift-dtm "$http_targets" "$grpc_targets" "$server_pids" "$etcd"
ceiling="h2load not installed (Debian: nghttp2-client)"
if command -v h2load >/dev/null; then
  printf '\x00\x00\x00\x00\x00' > "$dir/empty.grpc"
  ceiling=$(h2load -n 200000 -c 8 -m 64 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' -d "$dir/empty.grpc" \
    "http://127.0.0.1:$first_grpc/dtmgimp.Dtm/NewGid" | grep -E 'finished in' || echo "h2load failed")
fi
for pid in ${server_pids//,/ }; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done

if [[ -n "$compare" ]]; then
  mkdir "$dir/compare"
  chttp=$((25000 + RANDOM % 5000)); cgrpc=$((chttp + 1))
  (cd "$dir/compare" && HTTP_PORT=$chttp GRPC_PORT=$cgrpc exec bash -c "exec $compare") >"$dir/compare.log" 2>&1 &
  cpid=$!; pids+=("$cpid")
  if wait_ready "$chttp" "$cpid" "compare server"; then
    run_scenarios other "127.0.0.1:$chttp" "127.0.0.1:$cgrpc" "$cpid"
  else
    tail -20 "$dir/compare.log" >&2
  fi
  kill "$cpid" 2>/dev/null || true; wait "$cpid" 2>/dev/null || true
fi

echo
echo "| server | scenario | sagas/s | submit p50 | p99 | p999 (ms) | submit→succeed p50 / p99 (ms) | CPU µs/saga | RSS MiB | store check | CPU stolen % |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13 }' "$dir/rows"
echo
echo "ceiling, h2load gRPC NewGid on swift-dtm (8 connections × 64 streams): $ceiling"
if [[ -n "$compare" ]]; then
  echo
  echo "ratios swift-dtm / other: sagas/s (higher is better), submit p99 and CPU per saga (lower is better)"
  awk -F'\t' '
    function ratio(a, b) { return (b + 0 > 0 && a != "-" && b != "-") ? sprintf("%.2f×", a / b) : "-" }
    $1 == "swift-dtm" { ours[$2] = $0; order[n++] = $2 }
    $1 == "other" { theirs[$2] = $0 }
    END {
      for (i = 0; i < n; i++) {
        s = order[i]; if (!(s in theirs)) { print "  " s ": no result from the other server"; continue }
        split(ours[s], o, "\t"); split(theirs[s], t, "\t")
        printf "  %s: sagas/s %s, p99 %s, CPU/saga %s\n", s, ratio(o[3], t[3]), ratio(o[5], t[5]), ratio(o[9], t[9])
      }
    }' "$dir/rows"
fi
