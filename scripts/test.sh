#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, plus lint, types and the generated-files checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/hpo schemas check
.venv/bin/hpo space check
.venv/bin/python -m pytest -q -p no:cacheprovider --timeout=900 "$@"
