#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, plus the generated-files checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/hpo schemas check
if .venv/bin/hpo space --help >/dev/null 2>&1; then .venv/bin/hpo space check; fi
.venv/bin/python -m pytest -q -p no:cacheprovider --timeout=900 "$@"
