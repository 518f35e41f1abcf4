"""Promotion tests reuse the tracking tests' synthetic sweep folders (registry tests against a real server
live with the tracking tests, so one server process serves them all)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tracking"))

from tracking_fixtures import migrated_sqlite_db, mlflow_server, unique_name  # noqa: E402,F401
