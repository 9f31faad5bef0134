#!/usr/bin/env bash
# Installs everything swift-dtm needs on a Debian bookworm machine (run as root, or with sudo available),
# idempotently, then builds. Usage: scripts/setup.sh [--debug | --release | --no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

build=release
case "${1:-}" in
  --debug) build=debug ;;
  --release | "") build=release ;;
  --no-build) build=none ;;
  *) echo "usage: $0 [--debug | --release | --no-build]" >&2; exit 2 ;;
esac

sudo_cmd=""
if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi

# System packages: C libraries wrapped by the package, protobuf-c's compiler, tools the tests use (etcd: the
# discovery tests start a private etcd server on loopback; postgresql: the PostgreSQL store's tests run initdb
# into a temporary directory and start a private server on loopback, as `nobody` via util-linux's setpriv;
# mariadb-server: the MySQL store's tests do the same with mariadb-install-db and mariadbd; libmariadb-dev: MariaDB
# Connector/C, the MySQL store's client library; chromium: the admin console is tested in headless Chromium through Selenium).
packages=(libsqlite3-dev libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler libmimalloc-dev pkg-config
          python3 python3-venv python3-pip nghttp2-client curl ca-certificates sqlite3 openssl
          etcd-server etcd-client postgresql postgresql-client util-linux chromium chromium-driver
          libmariadb-dev mariadb-server mariadb-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# For the benchmark only, so optional: linux-perf (scripts/bench.sh counts the coordinator's system calls with
# `perf stat`), and the Go peers of Tools/peers/go (grpc-go branch service and client, built from these packages in
# GOPATH mode: Go modules cannot be downloaded). If they cannot be installed, bench.sh counts from /proc only and
# --peers go is unavailable.
optional=(linux-perf golang-go golang-google-grpc-dev golang-google-protobuf-dev protobuf-compiler protoc-gen-go
          protoc-gen-go-grpc)
missing=()
for p in "${optional[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing (optional, for the benchmark) ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null ||
    echo "setup: could not install ${missing[*]}; scripts/bench.sh will count from /proc only and --peers go will not build" >&2
fi

command -v swift >/dev/null || { echo "setup: the Swift toolchain (6.1 or newer) must be on PATH" >&2; exit 1; }

# Python packages for the interop tests, in a virtualenv; reinstalled only when requirements change.
req=Tests/Interop/requirements.txt
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
stamp=.venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi

case "$build" in
  release) swift build -c release --product dtm-server ;;
  debug) swift build --product dtm-server ;;
  none) ;;
esac
