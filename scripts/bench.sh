#!/usr/bin/env bash
# Benchmark: builds release, starts the coordinator on a fresh SQLite file (synchronous=FULL, as in production)
# and drives it with dtm-bench (its own gRPC + HTTP/1.1 branch service on the loopback), then prints one table,
# the machine's ceiling (h2load against the coordinator's gRPC NewGid) and the load curve.
#
# Usage: scripts/bench.sh [--seconds S] [--clients N] [--rate R] [--open-clients N] [--store sqlite|postgres|mysql]
#                        [--coordinators N] [--compare 'COMMAND'] [--curve-rates 'R ...'] [--curve-seconds S]
#                        [--curve-only | --no-curve] [--peers bench|go] [--no-perf] [--tracing] [S [N]]
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
#   --curve-rates 'R ...'  open-loop rates of the load curve, sagas/s (default '100 1000 4000')
#   --curve-seconds S  seconds of load per open-loop row of the curve (default: --seconds; 10 s at 100/s is 1,000 sagas)
#   --curve-only      only the load curve: the closed-loop rows and the curve's open-loop rows (no etcd row, no
#                     --rate row, no h2load)
#   --no-curve        no open-loop rows of the curve (the closed-loop rows still show the counters)
#   --peers bench|go  who runs the curve's rows: dtm-bench (default), or the Go peers of Tools/peers/go: a grpc-go
#                     client submitting 2-branch gRPC sagas and a grpc-go branch service (built here by
#                     Tools/peers/go/build.sh from Debian's packages; gRPC only); the other scenarios still use dtm-bench
#   --no-perf         do not count the coordinator's system calls with perf (context switches then from /proc)
#   --tracing         tracing on (README, Tracing): the coordinators export every span over OTLP/HTTP to a local sink
#                     (scripts/support/otlp-sink.py, which answers without decoding); its export count is printed
# Environment: DTM_SERVER_BIN, DTM_BENCH_BIN: run these binaries instead of building (copies taken for a measurement
# while others build).
# Scenarios: grpc and http submit (2 branches of the same protocol), each with wait_result false and true,
# closed loop; grpc open loop at --rate; for swift-dtm, when etcd is installed, grpc closed loop once more with
# the branch service registered in a private etcd and etcd:// branch URLs (go-zero discovery). Columns: completed sagas/s (last action reached the branch service,
# per gid), submit latency p50/p99/p999 ms (open loop: from the due time), submit→succeed p50/p99 ms, the
# server's CPU µs per completed saga and resident memory, a store check (gids sampled, found `succeed`), and the
# share of the machine's CPU the hypervisor stole during the scenario (/proc/stat; above a few % the figures of a
# virtual machine are not comparable with a quiet run).
# Load curve (a second table): gRPC and HTTP sagas, with and without wait_result, open loop at each --curve-rates
# rate and the closed loop; per completed saga the coordinator's CPU and what it did: durable commits
# (fdatasync + fsync calls), pwrite calls, pages written (/proc/PID/io write_bytes / 4 KiB), context switches,
# futex calls and epoll waits (epoll_wait + epoll_pwait). The calls are counted by `perf stat -p` (syscall
# tracepoints, which need tracefs, and the context-switches event) on the coordinator's threads (those alive when
# perf attaches, just before each run); where perf or an
# event is missing its column shows '-' and context switches come from /proc/PID/task/*/status. Counts cover the
# whole run of the load generator (start-up, load, drain, store check); with postgres or mysql the database's own
# commits and writes are not in them (another process).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10 clients=64 rate=5000 open_clients=1024 compare="" positional=0 store=sqlite coordinators=1
curve_rates="100 1000 4000" curve_seconds="" curve=1 main=1 peers=bench use_perf=1 tracing=0
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --open-clients) open_clients=$2; shift 2 ;;
    --compare) compare=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    --coordinators) coordinators=$2; shift 2 ;;
    --curve-rates) curve_rates=${2//,/ }; shift 2 ;;
    --curve-seconds) curve_seconds=$2; shift 2 ;;
    --curve-only) main=0; shift ;;
    --no-curve) curve=0; shift ;;
    --peers) peers=$2; shift 2 ;;
    --no-perf) use_perf=0; shift ;;
    --tracing) tracing=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    [0-9]*) if ((positional == 0)); then seconds=$1; else clients=$1; fi; positional=$((positional + 1)); shift ;;
    *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

case "$store" in sqlite | postgres | mysql) ;; *) echo "bench.sh: --store sqlite, postgres or mysql" >&2; exit 2 ;; esac
if ((coordinators < 1)) || { ((coordinators > 1)) && [[ "$store" == sqlite ]]; }; then
  echo "bench.sh: --coordinators N needs N >= 1, and --store postgres or mysql for N > 1" >&2; exit 2
fi

case "$peers" in bench | go) ;; *) echo "bench.sh: --peers bench or go" >&2; exit 2 ;; esac
curve_seconds=${curve_seconds:-$seconds}

server_bin=${DTM_SERVER_BIN:-.build/release/dtm-server} bench=${DTM_BENCH_BIN:-.build/release/dtm-bench}
[[ -n "${DTM_SERVER_BIN:-}" ]] || flock /tmp/swift-build.lock swift build -c release --product dtm-server >/dev/null
[[ -n "${DTM_BENCH_BIN:-}" ]] || flock /tmp/swift-build.lock swift build -c release --product dtm-bench >/dev/null

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

# The coordinators' counters: the perf events that work here (checked once, below), and from /proc the bytes
# written (write_bytes, whole process) and the context switches of their threads.
perf_events=""
proc_counters() {
  local p wb=0 cs=0 v
  for p in ${1//,/ }; do
    v=$(awk '/^write_bytes:/ {print $2}' "/proc/$p/io" 2>/dev/null); wb=$((wb + ${v:-0}))
    v=$(cat "/proc/$p"/task/*/status 2>/dev/null | awk '/ctxt_switches:/ {s += $2} END {print s + 0}'); cs=$((cs + v))
  done
  echo "$wb $cs"
}
# wait_idle PIDS: waits until the store holds no unfinished transaction (GET /api/dtmsvr/stats on $idle_http, when
# the server has it; at most 120 s) and the coordinators use under 2 % of a core over half a second (at most 60 s), so
# that a row does not count the backlog an overloaded row before it left behind.
wait_idle() {
  local p t0 t1 ticks hz stats i
  hz=$(getconf CLK_TCK)
  for i in $(seq 240); do
    [[ -n "${idle_http:-}" ]] || break
    stats=$(curl -s -m 2 "http://$idle_http/api/dtmsvr/stats") || break
    [[ "$stats" == *'"submitted"'* ]] || break
    [[ "$stats" == *'"prepared":0,'*'"submitted":0,'*'"aborting":0,'* ]] && break
    ((i < 240)) || echo "bench.sh: unfinished transactions left after 120 s ($stats); measuring anyway" >&2
    sleep 0.5
  done
  for _ in $(seq 120); do
    t0=0; for p in ${1//,/ }; do t0=$((t0 + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    sleep 0.5
    t1=0; for p in ${1//,/ }; do t1=$((t1 + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    ticks=$((t1 - t0))
    ((ticks * 100 < hz * 2)) && return 0
  done
  echo "bench.sh: the coordinators were still busy after 60 s; measuring anyway" >&2
}
# db_pids: with --store postgres and perf, the PostgreSQL cluster's processes (its backends, WAL writer, ...), whose
# fdatasync/fsync calls are the durable commits the coordinator asked for; else nothing.
db_pids() {
  [[ "$store" == postgres && -n "$perf_events" && -n "${pg_pid:-}" ]] || return 0
  pgrep -d, -P "$pg_pid" || true
}
# perf_sum EVENT...: the sum of the events' counts in $dir/perf.out, or - when none was counted.
perf_sum() {
  [[ -s "$dir/perf.out" ]] || { echo -; return; }
  awk -F, -v evs="$*" 'BEGIN { n = split(evs, e, " "); for (i = 1; i <= n; i++) want[e[i]] = 1 }
    ($3 in want) && $1 ~ /^[0-9]+$/ { s += $1; found = 1 } END { print found ? s : "-" }' "$dir/perf.out"
}

# measure SERVER TABLE SCENARIO LOAD PIDS COMMAND...: runs the load generator COMMAND (it prints one ROW line) with
# the coordinators' counters read around it, and appends "SERVER TABLE SCENARIO LOAD ROW-fields counters"
# (tab-separated) to $dir/rows. TABLE: main (the first table), curve (the load curve) or both. Counters, totals
# for the run: fdatasync+fsync, pwrite64, bytes written, context switches, futex, epoll waits ('-': not counted).
measure() {
  local server=$1 table=$2 scenario=$3 load=$4 pid=$5 before after perf_pid="" line syncs pw cs futex epoll db_pids_now db_syncs db_perf_pid=""
  shift 5
  rm -f "$dir/perf.out" "$dir/perf-db.out"
  wait_idle "$pid"
  before=$(proc_counters "$pid") db_pids_now=$(db_pids)
  if [[ -n "$perf_events" ]]; then
    perf stat -x, -e "$perf_events" -p "$pid" -o "$dir/perf.out" >/dev/null 2>&1 &
    perf_pid=$!
    if [[ -n "$db_pids_now" ]]; then
      perf stat -x, -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync -p "$db_pids_now" -o "$dir/perf-db.out" >/dev/null 2>&1 &
      db_perf_pid=$!
    fi
    sleep 0.3  # attached to the coordinators' threads before the load starts
  fi
  "$@" >"$dir/out" 2>&1 || { echo "bench.sh: load generator failed ($server: $*)" >&2; cat "$dir/out" >&2; }
  for p in $perf_pid $db_perf_pid; do kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  after=$(proc_counters "$pid")
  grep -v '^ROW' "$dir/out" | sed "s/^/[$server] /" >&2
  syncs=$(perf_sum syscalls:sys_enter_fdatasync syscalls:sys_enter_fsync) pw=$(perf_sum syscalls:sys_enter_pwrite64)
  if [[ -s "$dir/perf-db.out" ]]; then
    db_syncs=$(awk -F, '$1 ~ /^[0-9]+$/ { s += $1 } END { print s + 0 }' "$dir/perf-db.out")
    syncs=$(( ${syncs/-/0} + db_syncs ))
  fi
  futex=$(perf_sum syscalls:sys_enter_futex) epoll=$(perf_sum syscalls:sys_enter_epoll_wait syscalls:sys_enter_epoll_pwait)
  cs=$(perf_sum context-switches)
  [[ "$cs" != - ]] || cs=$((${after#* } - ${before#* }))
  grep '^ROW' "$dir/out" | cut -f2- | while IFS= read -r line; do
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$table" "$scenario" "$load" "$line" \
      "$syncs" "$pw" "$((${after% *} - ${before% *}))" "$cs" "$futex" "$epoll"
  done >>"$dir/rows"
}

# run_scenarios SERVER HTTP_TARGETS GRPC_TARGETS PIDS [ETCD]: measures every scenario against SERVER (rows in
# $dir/rows). Targets and PIDs are comma-separated (several coordinators share the load). With ETCD (host:port), the
# gRPC closed-loop scenario runs once more with the branch service registered in etcd and etcd:// branch URLs, right
# after the one with direct addresses. Then the load curve's open-loop rows, with dtm-bench or the Go peers.
run_scenarios() {
  local server=$1 http=$2 grpc=$3 pid=$4 etcd=${5:-} spec kind wr name r table=both
  local common=(--target "$grpc" --http-target "$http" --pid "$pid" --row)
  idle_http=${http%%,*}
  [[ "$peers" == bench ]] || table=main  # with --peers go the curve's closed-loop rows are the Go client's
  for spec in "grpc false" "grpc-etcd false" "grpc true" "http false" "http true" "open false"; do
    kind=${spec% *} wr=${spec#* }
    name=$kind; [[ $wr == false ]] || name+=" wait_result"
    case $kind in
      grpc | http)
        [[ $table == both ]] || ((main)) || continue
        measure "$server" $table "$name" "closed $clients" "$pid" \
          "$bench" --scenario "$kind" --wait-result "$wr" --clients "$clients" --seconds "$seconds" "${common[@]}" ;;
      grpc-etcd)
        [[ -n "$etcd" ]] && ((main)) || continue
        measure "$server" main "grpc etcd" "closed $clients" "$pid" \
          "$bench" --scenario grpc --wait-result false --clients "$clients" --etcd "$etcd" --seconds "$seconds" "${common[@]}" ;;
      open)
        ((main)) || continue
        measure "$server" main "grpc" "$rate/s" "$pid" \
          "$bench" --scenario grpc --wait-result false --rate "$rate" --clients "$open_clients" --seconds "$seconds" "${common[@]}" ;;
    esac
  done
  ((curve)) || [[ "$peers" == go ]] || return 0
  if [[ "$peers" == go ]]; then
    for wr in false true; do
      name="go grpc"; [[ $wr == false ]] || name+=" wait_result"
      local go_common=(-target "$grpc" -http-target "${http%%,*}" -busi "$go_busi" -busi-stats "http://$go_stats/stats"
                       -pid "$pid" -wait-result=$wr -row)
      if ((curve)); then
        for r in $curve_rates; do
          measure "$server" curve "$name" "$r/s" "$pid" \
            "$peers_dir/submit" -rate "$r" -clients "$open_clients" -seconds "$curve_seconds" "${go_common[@]}"
        done
      fi
      measure "$server" curve "$name" "closed $clients" "$pid" \
        "$peers_dir/submit" -clients "$clients" -seconds "$seconds" "${go_common[@]}"
    done
    return 0
  fi
  for kind in grpc http; do
    for wr in false true; do
      name=$kind; [[ $wr == false ]] || name+=" wait_result"
      for r in $curve_rates; do
        measure "$server" curve "$name" "$r/s" "$pid" \
          "$bench" --scenario $kind --wait-result $wr --rate "$r" --clients "$open_clients" --seconds "$curve_seconds" "${common[@]}"
      done
    done
  done
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2

if ((use_perf)) && command -v perf >/dev/null; then
  for ev in syscalls:sys_enter_fdatasync syscalls:sys_enter_fsync syscalls:sys_enter_pwrite64 syscalls:sys_enter_futex \
            syscalls:sys_enter_epoll_wait syscalls:sys_enter_epoll_pwait context-switches; do
    if perf stat -x, -e "$ev" -- true 2>&1 | grep -qE "^[0-9]+,[^,]*,$ev,"; then perf_events+="${perf_events:+,}$ev"; fi
  done
  echo "counters: perf stat -e ${perf_events:-(no event supported here)}" >&2
else
  echo "counters: /proc only (perf not installed (Debian: linux-perf) or --no-perf)" >&2
fi

# The Go peers (--peers go): built into the temp directory; one busi branch service for every run.
if [[ "$peers" == go ]]; then
  peers_dir=$dir/peers
  Tools/peers/go/build.sh "$peers_dir" >&2
  "$peers_dir/busi" -grpc 127.0.0.1:0 -stats 127.0.0.1:0 >"$dir/busi.log" 2>&1 &  # it prints the ports it got
  pids+=("$!")
  go_busi="" go_stats=""
  for _ in $(seq 100); do
    read -r _ _ go_busi _ go_stats < <(grep -m1 '^busi: gRPC' "$dir/busi.log" | tr -d ,) || true
    [[ -z "$go_stats" ]] || break
    sleep 0.1
  done
  go_busi=${go_busi%,} go_stats=${go_stats#http://} go_stats=${go_stats%/stats}
  curl -sf "http://$go_stats/stats" >/dev/null || { echo "bench.sh: the Go busi service did not start" >&2; cat "$dir/busi.log" >&2; exit 1; }
fi

# A private etcd (Debian's etcd-server) for the scenario with go-zero discovery; skipped when etcd is missing.
etcd=""
if ((main == 0)); then
  :  # --curve-only: no etcd row
elif command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
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
trace_env=()
if ((tracing)); then
  python3 scripts/support/otlp-sink.py "$dir/sink.port" "$dir/sink.counts" &
  sink_pid=$!; pids+=("$sink_pid")
  for _ in $(seq 100); do [[ -s "$dir/sink.port" ]] && break; sleep 0.05; done
  trace_env=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(cat "$dir/sink.port")")
  echo "tracing on: every span exported to the sink on port $(cat "$dir/sink.port")" >&2
fi
http_targets="" grpc_targets="" server_pids="" first_grpc=""
for n in $(seq "$coordinators"); do
  http=$((20000 + RANDOM % 5000)); grpc=$((http + 1))
  env HTTP_PORT=$http GRPC_PORT=$grpc LISTEN_HOST=127.0.0.1 "${store_env[@]}" "${trace_env[@]}" LOG_LEVEL=warn \
    MICRO_SERVICE_DRIVER=dtm-driver-gozero "$server_bin" >"$dir/server-$n.log" 2>&1 &
  pid=$!; pids+=("$pid")
  wait_ready "$http" "$pid" "swift-dtm $n"
  http_targets+="${http_targets:+,}127.0.0.1:$http"; grpc_targets+="${grpc_targets:+,}127.0.0.1:$grpc"
  server_pids+="${server_pids:+,}$pid"; first_grpc=${first_grpc:-$grpc}
done
run_scenarios swift-dtm "$http_targets" "$grpc_targets" "$server_pids" "$etcd"
ceiling="h2load not installed (Debian: nghttp2-client)"
if ((main == 0)); then
  ceiling="not measured (--curve-only)"
elif command -v h2load >/dev/null; then
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

# $dir/rows: server, table, scenario, load, then dtm-bench's ROW fields (label, sagas/s, p50, p99, p999, s2s p50,
# s2s p99, CPU µs/saga, RSS MiB, store check, missing, steal %, completed), then the counters (see measure).
if ((main)); then
  echo
  echo "| server | scenario | sagas/s | submit p50 | p99 | p999 (ms) | submit→succeed p50 / p99 (ms) | CPU µs/saga | RSS MiB | store check | CPU stolen % |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F'\t' '$2 != "curve" { printf "| %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s |\n", $1, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $16 }' "$dir/rows"
  echo
  echo "ceiling, h2load gRPC NewGid on swift-dtm (8 connections × 64 streams): $ceiling"
fi
echo
echo "load curve: per completed saga, the coordinator's CPU and its fdatasync+fsync, pwrite, pages written (4 KiB),"
echo "context switches, futex calls and epoll waits ('-': not counted here; see --help)"
[[ "$store" != postgres || -z "$perf_events" ]] || echo "fdatasync+fsync include the PostgreSQL cluster's (its WAL flushes); the other counts are the coordinator's"
echo
echo "| server | scenario | load | sagas/s | submit p50 / p99 (ms) | CPU µs/saga | fdatasync+fsync | pwrite | pages written | ctx switches | futex | epoll waits | CPU stolen % |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
awk -F'\t' '
  function per(v) { return (v == "-" || v == "" || $17 + 0 <= 0) ? "-" : sprintf(v / $17 < 10 ? "%.2f" : "%.1f", v / $17) }
  function rank(load) { return load ~ /^closed/ ? 1e12 : load + 0 }
  $2 != "main" {
    key = $1 "\t" $3; if (!(key in n)) order[groups++] = key
    line = sprintf("| %s | %s | %s | %s | %s / %s | %s | %s | %s | %s | %s | %s | %s | %s |", $1, $3, $4, $6, $7, $8, $12,
                   per($18), per($19), ($20 == "-" ? "-" : per($20 / 4096)), per($21), per($22), per($23), $16)
    i = n[key]++; rows[key, i] = line; ranks[key, i] = rank($4)
  }
  END {
    for (g = 0; g < groups; g++) {
      key = order[g]
      for (i = 0; i < n[key]; i++) for (j = i + 1; j < n[key]; j++) if (ranks[key, j] < ranks[key, i]) {
        t = rows[key, i]; rows[key, i] = rows[key, j]; rows[key, j] = t; t = ranks[key, i]; ranks[key, i] = ranks[key, j]; ranks[key, j] = t }
      for (i = 0; i < n[key]; i++) print rows[key, i]
    }
  }' "$dir/rows"
if [[ -n "$compare" ]]; then
  echo
  echo "ratios swift-dtm / other: sagas/s (higher is better), submit p99 and CPU per saga (lower is better)"
  awk -F'\t' '
    function ratio(a, b) { return (b + 0 > 0 && a != "-" && b != "-") ? sprintf("%.2f×", a / b) : "-" }
    $1 == "swift-dtm" { ours[$5] = $0; order[n++] = $5 }
    $1 == "other" { theirs[$5] = $0 }
    END {
      for (i = 0; i < n; i++) {
        s = order[i]; if (!(s in theirs)) { print "  " s ": no result from the other server"; continue }
        split(ours[s], o, "\t"); split(theirs[s], t, "\t")
        printf "  %s: sagas/s %s, p99 %s, CPU/saga %s\n", s, ratio(o[6], t[6]), ratio(o[8], t[8]), ratio(o[12], t[12])
      }
    }' "$dir/rows"
fi
if ((tracing)); then
  kill -TERM "$sink_pid" 2>/dev/null || true
  for _ in $(seq 50); do [[ -s "$dir/sink.counts" ]] && break; sleep 0.1; done
  read -r exports bytes < "$dir/sink.counts" || true
  echo
  echo "tracing: the sink took ${exports:-?} OTLP exports, ${bytes:-?} bytes"
fi
