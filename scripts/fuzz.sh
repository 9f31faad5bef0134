#!/usr/bin/env bash
# Builds one libFuzzer target with the toolchain's -sanitize=fuzzer,address and fuzzes it on one core.
#
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer flags…]
#
# TARGET is FuzzProtoRequest, FuzzJSONRequest, FuzzH2Server or FuzzGRPCFraming (Sources/Fuzz/). The
# seeds in Tests/FuzzCorpus/TARGET are read, never written; the growing corpus is kept in
# .build-fuzz/corpus/TARGET and crash/timeout/oom inputs go to .build-fuzz/artifacts/TARGET/.
# A crashing input becomes a regression test (Tests/FuzzCorpus/regressions/, see the README).
# Replay files without libFuzzer: `swift run TARGET FILE…` (a plain build runs the same harness).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:?usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags…]}
seconds=${2:?usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags…]}
shift 2
case "$target" in
    FuzzProtoRequest | FuzzJSONRequest) max_len=16384 ;;
    FuzzH2Server | FuzzGRPCFraming) max_len=65536 ;;
    *) echo "unknown target '$target' (FuzzProtoRequest, FuzzJSONRequest, FuzzH2Server, FuzzGRPCFraming)" >&2; exit 2 ;;
esac

scratch=.build-fuzz
# --sanitize fuzzer makes SwiftPM link libFuzzer's main (and not rename ours); -Xswiftc -sanitize=…
# instruments the Swift code for coverage; FUZZING drops the harness's own replay main.
flock /tmp/swift-build.lock swift build -c debug --scratch-path "$scratch" --product "$target" \
    --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING \
    2> >(grep -v "Cannot export local symbol" >&2)

corpus="$scratch/corpus/$target"
artifacts="$scratch/artifacts/$target"
mkdir -p "$corpus" "$artifacts"
dict=()
[ -f "Tests/FuzzCorpus/$target.dict" ] && dict=(-dict="Tests/FuzzCorpus/$target.dict")

# One process on one core (libFuzzer's default; -jobs/-workers would only add a supervising parent).
# SWIFT_BACKTRACE=enable=no: let libFuzzer, not Swift's backtracer, handle a trap.
SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
    "$scratch/debug/$target" \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096 -max_len="$max_len" -timeout=10 \
    -artifact_prefix="$artifacts/" "${dict[@]}" "$@" "$corpus" "Tests/FuzzCorpus/$target"
