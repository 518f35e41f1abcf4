"""Promotion tests reuse the tracking tests' synthetic sweep folders (registry tests against a real server
live with the tracking tests, so one server process serves them all)."""

from __future__ import annotations

from tests.tracking.tracking_fixtures import migrated_sqlite_db, mlflow_server, unique_name  # noqa: F401
