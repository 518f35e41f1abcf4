"""Third-party console noise the user cannot act on, filtered where the engine starts those libraries.

`hpo <command>` calls `quiet_libraries()` first. It drops, by their exact text:
- MLflow's INFO lines while it creates or migrates a sweep's SQLite store ("Creating initial MLflow
  database tables...", "Updating database tables", alembic's "Context impl ...");
- Ray's notice that token authentication is on for the local cluster the engine starts (a safe default
  the engine relies on; nothing to do).
Warnings and errors of those libraries stay.
"""

from __future__ import annotations

import logging
from typing import Iterable

#: logger name -> message prefixes to drop ("" drops every record below WARNING)
DROPPED_LOG_RECORDS: dict[str, tuple[str, ...]] = {
    "mlflow.store.db.utils": ("Creating initial MLflow database tables", "Updating database tables"),
    "alembic.runtime.migration": ("Context impl", "Will assume", "Running upgrade"),
    "ray._private.authentication.authentication_token_setup": ("Token authentication is enabled",),
}


class DropMessages(logging.Filter):
    """Drops records whose message starts with one of `prefixes`."""

    def __init__(self, prefixes: Iterable[str]) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def quiet_libraries() -> None:
    """Install the filters (idempotent)."""
    for name, prefixes in DROPPED_LOG_RECORDS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) for f in logger.filters):
            logger.addFilter(DropMessages(prefixes))
