#!/usr/bin/env bash
# What a test run leaves behind: temporary files and directories, processes of the servers the tests start, and
# listening TCP ports. `snapshot DIR` records the state before the run in DIR; `check DIR` compares the state after
# it and fails, listing them, if the run left any of the three behind.
#   - temporary: new entries in /tmp, and anything in DIR (the run's TMPDIR) except what the toolchain makes there
#     (SwiftPM's TemporaryDirectory.* and _*.lock, and swift-generated-sources, where the compiler writes macro
#     expansions on a cold build: made by the build and the test runner, not by the tests) and pytest's emptied
#     pytest-of-<user> directory;
#   - processes: dtm-server, dtm-bench, etcd, postgres, mariadbd, chromium and chromedriver processes that were not
#     running before;
#   - ports: TCP ports listening after the run that were not before.
# Usage: scripts/support/leftovers.sh snapshot DIR | check DIR
set -euo pipefail
mode=${1:-} dir=${2:-}
[ -n "$mode" ] && [ -d "$dir" ] || { echo "usage: $0 snapshot|check DIR" >&2; exit 2; }
state=$dir/.leftovers
pattern='dtm-server|dtm-bench|/usr/bin/etcd|bin/postgres|mariadbd|chromedriver|chromium'

processes() { pgrep -f "$pattern" | sort -n || true; }
ports() { ss -ltnH 2>/dev/null | awk '{print $4}' | sort -u; }
tmp_entries() { ls -A /tmp | sort; }

case "$mode" in
  snapshot)
    mkdir -p "$state"
    tmp_entries > "$state/tmp"
    processes > "$state/processes"
    ports > "$state/ports"
    ;;
  check)
    [ -d "$state" ] || { echo "leftovers: no snapshot in $dir" >&2; exit 2; }
    sleep 1  # servers stopped at the very end finish exiting
    problems=0
    new_tmp=$(comm -13 "$state/tmp" <(tmp_entries) | grep -vx "$(basename "$dir")" || true)
    in_dir=$(find "$dir" -mindepth 1 -maxdepth 1 ! -name '.leftovers' ! -name 'TemporaryDirectory.*' ! -name '_*.lock' ! -name 'swift-generated-sources' ! -name 'pytest-of-*' || true)
    in_pytest=$(find "$dir" -mindepth 2 -path "$dir/pytest-of-*/*" 2>/dev/null || true)
    if [ -n "$new_tmp$in_dir$in_pytest" ]; then
      echo "leftovers: temporary files or directories left behind:"; printf '  %s\n' $new_tmp $in_dir $in_pytest
      problems=1
    fi
    new_procs=$(comm -13 <(sort "$state/processes") <(processes) || true)
    live=""
    for pid in $new_procs; do [ -d "/proc/$pid" ] && [ "$pid" != "$$" ] && live+="$pid "; done
    if [ -n "$live" ]; then
      echo "leftovers: processes left running:"; for pid in $live; do ps -o pid=,args= -p "$pid" | cut -c1-200 || true; done
      problems=1
    fi
    new_ports=$(comm -13 "$state/ports" <(ports) || true)
    if [ -n "$new_ports" ]; then
      echo "leftovers: ports left listening:"; printf '  %s\n' $new_ports
      problems=1
    fi
    if [ "$problems" = 0 ]; then echo "leftovers: none (temporary files, processes, listening ports)"; fi
    exit "$problems"
    ;;
  *) echo "usage: $0 snapshot|check DIR" >&2; exit 2 ;;
esac
