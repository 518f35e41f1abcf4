#!/usr/bin/env bash
# Create .venv and install the project with its test extras, pinning torch to the CPU build
# (constraints.txt) so no package drags in a multi-GB CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# PYTHONWARNINGS: the build backend's notes about editable installs are not for the user to act on.
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
# Test-only: panopticapi's own PQ evaluation scores our inference JSON as written. Its metadata pins
# numpy<2 although the code runs on numpy 2, so it is installed without its dependencies (all of which
# the project already has) instead of through the test extra, where it would downgrade numpy.
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q --no-deps -c constraints.txt "panopticapi-lite==0.2.0"
# The `hpo ui` browser test drives Debian's headless chromium (never a downloaded browser build).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
  else
    echo "note: chromium is not installed and apt-get cannot run as this user; the hpo ui browser test will fail" >&2
  fi
fi
