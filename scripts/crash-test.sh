#!/usr/bin/env bash
# Crash test: kill -9 the coordinator under saga load ROUNDS times and check that no acknowledged transaction is
# lost, none gets stuck and saga semantics hold (see scripts/crash_test.py). The load mixes HTTP and gRPC sagas
# (a third over gRPC) when the Python has grpcio + grpcio-tools (.venv from scripts/setup.sh, preferred below);
# else it warns and runs HTTP only. Builds nothing: uses $DTM_SERVER_BIN, else .build/release/dtm-server, else
# .build/debug/dtm-server.
# Usage: scripts/crash-test.sh [ROUNDS] [crash_test.py options...]
set -euo pipefail
cd "$(dirname "$0")/.."
py=python3
[ -x .venv/bin/python ] && py=.venv/bin/python
exec "$py" scripts/crash_test.py "$@"
