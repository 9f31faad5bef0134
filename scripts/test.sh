#!/usr/bin/env bash
# Installs what the tests need (idempotently) and runs the whole suite: the format check (scripts/lint.sh), swift
# test (the store contract on in-memory, SQLite and a private PostgreSQL cluster), then the Python interop tests
# (official dtmcli client, grpcio, a private etcd) against the real dtm-server on SQLite, the PostgreSQL and MySQL
# stores' own interop tests, and a representative part of both suites again with the server on PostgreSQL and on
# MySQL (a private MariaDB server).
# Usage: scripts/test.sh [--postgres-all] [--mysql-all]   (both interop suites in full on that store as well)
set -euo pipefail
cd "$(dirname "$0")/.."
postgres_all=0 mysql_all=0
for arg in "$@"; do
  case "$arg" in
    --postgres-all) postgres_all=1 ;;
    --mysql-all) mysql_all=1 ;;
    *) echo "usage: $0 [--postgres-all] [--mysql-all]" >&2; exit 2 ;;
  esac
done
scripts/setup.sh --no-build
scripts/lint.sh

# Everything the run makes goes under one temporary directory (TMPDIR), checked at the end together with /tmp, the
# processes and the listening ports (scripts/support/leftovers.sh): a test that leaves anything behind fails the run.
suite_tmp=$(mktemp -d /tmp/swift-dtm-suite.XXXXXX)
chmod 1777 "$suite_tmp"  # like /tmp: the database servers the tests start run as nobody and keep temporary files here
scripts/support/leftovers.sh snapshot "$suite_tmp"
export TMPDIR="$suite_tmp"

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
    Tests/InteropGRPC/test_grpc_api.py Tests/InteropGRPC/test_grpc_branches.py Tests/InteropGRPC/test_gozero_scenario.py \
    "Tests/InteropGRPC/test_tracing_runtime.py::test_a_transaction_keeps_its_trace_across_kill_9_and_restart"
fi

# The same server on MySQL (each server under test in its own database of one private MariaDB server).
export DTM_TEST_STORE=mysql
if ((mysql_all)); then
  DTM_SERVER_BIN="$PWD/.build/debug/dtm-server" .venv/bin/python -m pytest -q -p no:cacheprovider Tests/Interop
  DTM_SERVER_BIN="$PWD/.build/debug/dtm-server" .venv/bin/python -m pytest -q -p no:cacheprovider Tests/InteropGRPC
else
  DTM_SERVER_BIN="$PWD/.build/debug/dtm-server" .venv/bin/python -m pytest -q -p no:cacheprovider \
    Tests/Interop/test_dtmcli_saga.py Tests/Interop/test_dtmcli_tcc.py Tests/Interop/test_dtmcli_msg.py
  DTM_SERVER_BIN="$PWD/.build/debug/dtm-server" .venv/bin/python -m pytest -q -p no:cacheprovider \
    Tests/InteropGRPC/test_grpc_api.py Tests/InteropGRPC/test_grpc_branches.py Tests/InteropGRPC/test_gozero_scenario.py \
    "Tests/InteropGRPC/test_tracing_runtime.py::test_a_transaction_keeps_its_trace_across_kill_9_and_restart"
fi

unset TMPDIR
scripts/support/leftovers.sh check "$suite_tmp"
rm -rf "$suite_tmp"
