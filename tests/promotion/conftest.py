"""Promotion tests reuse the tracking tests' synthetic sweep folders and MLflow stores."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tracking"))

from tracking_fixtures import migrated_sqlite_db, mlflow_server, store, unique_name  # noqa: E402,F401
