#!/usr/bin/env bash
# Installs what the tests need (idempotently) and runs the whole suite: the format check (scripts/lint.sh), swift
# test, then the Python interop tests (official dtmcli client, grpcio, a private etcd) against the real dtm-server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-build
scripts/lint.sh

swift build --build-tests
swift test --skip-build

DTM_SERVER_BIN="$PWD/.build/debug/dtm-server" .venv/bin/python -m pytest -q -p no:cacheprovider Tests/Interop
DTM_SERVER_BIN="$PWD/.build/debug/dtm-server" .venv/bin/python -m pytest -q -p no:cacheprovider Tests/InteropGRPC
