#!/usr/bin/env bash
# Installs what the tests need (idempotently) and runs the whole suite: the format check (scripts/lint.sh), swift
# test (the store contract on in-memory, SQLite and a private PostgreSQL cluster), then the Python interop tests
# (official dtmcli client, grpcio, a private etcd) against the real dtm-server on SQLite, the PostgreSQL store's own
# interop tests, and a representative part of both suites again with the server on PostgreSQL.
# Usage: scripts/test.sh [--postgres-all]   (--postgres-all: both interop suites in full on PostgreSQL as well)
set -euo pipefail
cd "$(dirname "$0")/.."
postgres_all=0
case "${1:-}" in
  --postgres-all) postgres_all=1 ;;
  "") ;;
  *) echo "usage: $0 [--postgres-all]" >&2; exit 2 ;;
esac
scripts/setup.sh --no-build
scripts/lint.sh

swift build --build-tests
swift test --skip-build

DTM_SERVER_BIN="$PWD/.build/debug/dtm-server" .venv/bin/python -m pytest -q -p no:cacheprovider Tests/Interop
DTM_SERVER_BIN="$PWD/.build/debug/dtm-server" .venv/bin/python -m pytest -q -p no:cacheprovider Tests/InteropGRPC

# The same server on PostgreSQL (each server under test in its own schema of one private cluster).
export DTM_TEST_STORE=postgres
if ((postgres_all)); then
  DTM_SERVER_BIN="$PWD/.build/debug/dtm-server" .venv/bin/python -m pytest -q -p no:cacheprovider Tests/Interop
  DTM_SERVER_BIN="$PWD/.build/debug/dtm-server" .venv/bin/python -m pytest -q -p no:cacheprovider Tests/InteropGRPC
else
  DTM_SERVER_BIN="$PWD/.build/debug/dtm-server" .venv/bin/python -m pytest -q -p no:cacheprovider \
    Tests/Interop/test_dtmcli_saga.py Tests/Interop/test_dtmcli_tcc.py Tests/Interop/test_dtmcli_msg.py
  DTM_SERVER_BIN="$PWD/.build/debug/dtm-server" .venv/bin/python -m pytest -q -p no:cacheprovider \
    Tests/InteropGRPC/test_grpc_api.py Tests/InteropGRPC/test_grpc_branches.py Tests/InteropGRPC/test_gozero_scenario.py
fi
