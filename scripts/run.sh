#!/usr/bin/env bash
# Sets up (idempotently), builds release and runs the coordinator with the embedded SQLite store
# (./dtm.sqlite in the current directory). Extra arguments go to dtm-server (-c conf.yml, -d, -r).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh" --release
exec "$root/.build/release/dtm-server" "$@"
