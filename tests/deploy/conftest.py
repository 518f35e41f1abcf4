"""Fixtures for the deploy tests (helpers live beside this file in deploy_fixtures.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
