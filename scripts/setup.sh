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
