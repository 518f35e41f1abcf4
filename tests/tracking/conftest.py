"""Tracking tests: synthetic sweep folders and the stores they log into."""

from __future__ import annotations

from tests.tracking.tracking_fixtures import migrated_sqlite_db, mlflow_server, store, unique_name  # noqa: F401
