#!/usr/bin/env bash
# The benchmark's separate environment: benchmark-only packages, installed --no-deps into .venv-bench/
# (gitignored), on top of the project's .venv (run scripts/setup.sh first). Idempotent; ~10 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
REQ=benchmarks/search_efficiency/requirements-bench.txt
STAMP=.venv-bench/.installed
if [ -f "$STAMP" ] && cmp -s "$REQ" "$STAMP"; then exit 0; fi
rm -rf .venv-bench
.venv/bin/python -m pip install -q --no-deps --target .venv-bench -r "$REQ"
cp "$REQ" "$STAMP"
