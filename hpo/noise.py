"""Third-party console noise the user cannot act on, filtered where the engine starts those libraries.

`hpo <command>` calls `quiet_libraries()` first. It drops, by their exact text:
- MLflow's INFO lines while it creates or migrates a sweep's SQLite store ("Creating initial MLflow
  database tables...", "Updating database tables", alembic's "Context impl ...");
- Ray's notice that token authentication is on for the local cluster the engine starts (a safe default
  the engine relies on; nothing to do).
Warnings and errors of those libraries stay.
"""

from __future__ import annotations

from skillkit.cli import DropMessages, drop_noise

__all__ = ["DROPPED_LOG_RECORDS", "DropMessages", "quiet_libraries"]

#: logger name -> message prefixes to drop
DROPPED_LOG_RECORDS: dict[str, tuple[str, ...]] = {
    "mlflow.store.db.utils": ("Creating initial MLflow database tables", "Updating database tables"),
    "alembic.runtime.migration": ("Context impl", "Will assume", "Running upgrade"),
    "ray._private.authentication.authentication_token_setup": ("Token authentication is enabled",),
}


def quiet_libraries() -> None:
    """Install the filters (idempotent)."""
    drop_noise(DROPPED_LOG_RECORDS)
