#!/usr/bin/env bash
# Crash test: kill -9 the coordinator under saga load ROUNDS times and check that no acknowledged transaction is
# lost, none gets stuck, saga semantics hold and no branch op of one transaction is ever called twice at overlapping
# times (see scripts/crash_test.py). The load mixes HTTP and gRPC sagas (a third over gRPC) when the Python has
# grpcio + grpcio-tools (.venv from scripts/setup.sh, preferred below); else it warns and runs HTTP only.
# --store sqlite (default: one SQLite file) | postgres (a private PostgreSQL cluster from Tests/Interop/pg_harness.py,
# needs Debian's postgresql binaries) | mysql (a private MariaDB server from Tests/Interop/mysql_harness.py, needs
# Debian's mariadb-server); --coordinators N (default 1; N > 1 needs postgres or mysql) runs N dtm-servers
# on one shared schema, spreads the submits over them and kills one at random each round while the others serve.
# Builds nothing: uses $DTM_SERVER_BIN, else .build/release/dtm-server, else .build/debug/dtm-server (it must be
# built with PostgreSQL support for --store postgres).
# Usage: scripts/crash-test.sh [ROUNDS] [--store sqlite|postgres|mysql] [--coordinators N] [crash_test.py options...]
#   e.g. scripts/crash-test.sh 10 --store postgres --coordinators 3
set -euo pipefail
cd "$(dirname "$0")/.."
py=python3
[ -x .venv/bin/python ] && py=.venv/bin/python
exec "$py" scripts/crash_test.py "$@"
