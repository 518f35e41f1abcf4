"""Tracking tests: synthetic sweep folders and the stores they log into."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from tracking_fixtures import migrated_sqlite_db, mlflow_server, store, unique_name  # noqa: E402,F401
