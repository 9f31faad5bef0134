#!/usr/bin/env bash
# Checks that the generated console is current, that README.md's folder tree matches the tree
# (scripts/check-layout.py) and that every import follows the target graph (scripts/check-imports.py); then the Swift
# sources against the committed .swift-format configuration with the toolchain's swift-format, in lint mode (nothing is
# rewritten). Fix the format with: swift-format format --in-place --configuration .swift-format --recursive Sources Tests
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift-format >/dev/null || { echo "lint.sh: swift-format not found (it ships with the Swift toolchain, 6.0+)" >&2; exit 1; }
python3 scripts/gen-console.py --check
python3 scripts/check-layout.py
python3 scripts/check-imports.py
swift-format lint --strict --parallel --configuration .swift-format --recursive Sources Tests
echo "lint: ok"
