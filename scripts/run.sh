#!/usr/bin/env bash
# Sets up (idempotently), builds release and runs the coordinator with the embedded SQLite store
# (./dtm.sqlite in the current directory). Extra arguments go to dtm-server (-c conf.yml, -d, -r).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh" --release
# The Swift crash reporter, set for a server: no prompt, the crashed thread only (README, Security).
export SWIFT_BACKTRACE="${SWIFT_BACKTRACE:-interactive=no,color=no,threads=crashed,registers=none,images=none}"
exec "$root/.build/release/dtm-server" "$@"
