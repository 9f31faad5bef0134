#!/usr/bin/env bash
# Builds the Go peers (busi: gRPC branch service; submit: saga load generator) into OUTDIR, from Debian's packages
# only (golang-go, golang-google-grpc-dev, golang-google-protobuf-dev, protobuf-compiler, protoc-gen-go,
# protoc-gen-go-grpc; scripts/setup.sh installs them): Go modules cannot be downloaded here, so this is a GOPATH
# build (GO111MODULE=off) in a temporary GOPATH, with /usr/share/gocode for the libraries. The Go code for
# Protos/busi.proto and Protos/dtmgimp.proto is generated there at build time; nothing generated is kept.
# Usage: Tools/peers/go/build.sh OUTDIR
set -euo pipefail
out=${1:?usage: Tools/peers/go/build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
protos=$(cd "$here/../../../Protos" && pwd)
for tool in go protoc protoc-gen-go protoc-gen-go-grpc; do
  command -v "$tool" >/dev/null || {
    echo "build.sh: $tool not found (Debian: golang-go protobuf-compiler protoc-gen-go protoc-gen-go-grpc)" >&2; exit 1; }
done
for lib in google.golang.org/grpc google.golang.org/protobuf; do
  [[ -d /usr/share/gocode/src/$lib ]] || {
    echo "build.sh: /usr/share/gocode/src/$lib missing (Debian: golang-google-grpc-dev golang-google-protobuf-dev)" >&2; exit 1; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
gopath=$(mktemp -d)
trap 'chmod -R u+w "$gopath" 2>/dev/null; rm -rf "$gopath"' EXIT
src=$gopath/src/peers
mkdir -p "$src"
cp -r "$here/codec" "$here/busi" "$here/submit" "$src/"
# go_package in our protos is relative ("./busi"); map each file to an import path inside the temporary GOPATH.
maps=(--go_opt=Mbusi.proto=peers/pb/busi --go_opt=Mdtmgimp.proto=peers/pb/dtmgimp
      --go-grpc_opt=Mbusi.proto=peers/pb/busi --go-grpc_opt=Mdtmgimp.proto=peers/pb/dtmgimp)
protoc -I "$protos" -I /usr/include --go_out="$gopath/src" --go-grpc_out="$gopath/src" "${maps[@]}" \
  busi.proto dtmgimp.proto
export GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOCACHE=${GOCACHE:-$gopath/cache} GOFLAGS=
go build -o "$out/busi" peers/busi
go build -o "$out/submit" peers/submit
echo "built $out/busi and $out/submit ($(go version | cut -d' ' -f3))"
