#!/usr/bin/env bash
# Installs what the tests need (idempotently) and runs the whole suite: swift test, then the Python
# interop tests (official dtmcli client) against the real dtm-server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-build

swift build --build-tests
swift test --skip-build

DTM_SERVER_BIN="$PWD/.build/debug/dtm-server" .venv/bin/python -m pytest -q -p no:cacheprovider Tests/Interop
DTM_SERVER_BIN="$PWD/.build/debug/dtm-server" .venv/bin/python -m pytest -q -p no:cacheprovider Tests/InteropGRPC
