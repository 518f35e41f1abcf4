#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, plus the generated-files checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/hpo schemas check
.venv/bin/hpo space check
.venv/bin/python -m pytest -q -p no:cacheprovider --timeout=900 "$@"
