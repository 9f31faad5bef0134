# A private PostgreSQL cluster for the scripts (sourced): Debian's binaries, initdb into a directory of the caller's,
# the server on a loopback port, as nobody when run as root (postgres refuses root). setpriv and env exec, so the
# PID is the server's own; stop it with `kill -INT "$pg_pid"` (fast shutdown).
#   pg_cluster_start DIR PORT [postgres -c settings...]   sets pg_pid, pgbin, pgver; logs in DIR/{initdb,postgres}.log
#   pg_run PROGRAM ARGS...                                runs one of the cluster's programs (psql, pg_isready, ...)
pgver="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -name '[0-9]*' -printf '%f\n' 2>/dev/null | sort -n | tail -n1)"
pgbin="/usr/lib/postgresql/$pgver/bin"
pg_pid=""
pg_dir=""

pg_run() { (cd "$pg_dir" && exec "${pg_as[@]}" "$pgbin/$1" "${@:2}"); }

pg_cluster_start() {
  pg_dir=$1
  local port=$2
  shift 2
  [ -n "$pgver" ] && [ -x "$pgbin/postgres" ] && [ -x "$pgbin/initdb" ] || {
    echo "PostgreSQL server not found in /usr/lib/postgresql: install Debian's postgresql (scripts/setup.sh does)" >&2; return 1; }
  mkdir -p "$pg_dir"
  if [ "$(id -u)" = 0 ]; then
    pg_as=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
    chmod 711 "$(dirname "$pg_dir")"; chown 65534:65534 "$pg_dir"
  else
    pg_as=(env)
  fi
  pg_run initdb -D "$pg_dir/data" -U dtm -A trust -E UTF8 --no-locale >"$pg_dir/initdb.log" 2>&1
  local settings=()
  for s in "$@"; do settings+=(-c "$s"); done
  (cd "$pg_dir" && exec "${pg_as[@]}" "$pgbin/postgres" -D "$pg_dir/data" -p "$port" -k "$pg_dir" \
    -c listen_addresses=127.0.0.1 "${settings[@]}") >"$pg_dir/postgres.log" 2>&1 </dev/null &
  pg_pid=$!
  for _ in $(seq 300); do
    pg_run pg_isready -h 127.0.0.1 -p "$port" -U dtm -d postgres >/dev/null 2>&1 && return 0
    kill -0 "$pg_pid" 2>/dev/null || { echo "postgres exited at start-up; see $pg_dir/postgres.log" >&2; return 1; }
    sleep 0.1
  done
  echo "postgres did not accept connections on port $port" >&2
  return 1
}
