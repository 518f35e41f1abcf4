"""The trainer's half of `results_dir/status.json` (format: `skillkit.status.format`).

Lines are appended and flushed (and fsynced) one at a time, so a reader polling the file (the HPO engine,
a person with `tail -f`) never sees half a record. Only the global-zero process writes (the writer is
created with `enabled=False` elsewhere), so a multi-GPU run yields one line per event, not one per process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skillkit.checkpoints import last_epoch_index
from skillkit.states import ErrorClass, RunStatus, Verbosity
from skillkit.status.format import STATUS_FILE, StatusLine

# The values by name, so call sites read `writer.write(SUCCESS, ...)`.
STARTED, RUNNING, SUCCESS, FAILURE = RunStatus.STARTED, RunStatus.RUNNING, RunStatus.SUCCESS, RunStatus.FAILURE
INFO, WARNING, ERROR = Verbosity.INFO, Verbosity.WARNING, Verbosity.ERROR
ERROR_CLASSES = tuple(error_class.value for error_class in ErrorClass)


class StatusWriter:
    """Appends contract-shaped lines to `<results_dir>/status.json`.

    Args:
        results_dir: folder of the run; created if missing.
        num_epochs: epochs planned (None for actions that do not train); every line repeats TAO's
            `max_epoch`, the index of the last one.
        enabled: False on non-zero ranks, so calls are no-ops there.
    """

    def __init__(self, results_dir: str | os.PathLike[str], *, num_epochs: int | None, enabled: bool = True) -> None:
        self.path = Path(results_dir) / STATUS_FILE
        self.max_epoch = None if num_epochs is None else last_epoch_index(num_epochs)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(
        self,
        status: RunStatus | str,
        message: str,
        *,
        verbosity: Verbosity | str = Verbosity.INFO,
        epoch: int | None = None,
        step: int | None = None,
        time_per_epoch: float | None = None,
        eta: float | None = None,
        kpi: Mapping[str, Any] | None = None,
        error_class: ErrorClass | str | None = None,
    ) -> StatusLine | None:
        """Append one line and flush it to disk; returns the line written (None when disabled).

        `epoch` is TAO's 0-based index of the epoch the line is about (`skillkit.checkpoints`).
        """
        try:
            status = RunStatus(status)
            verbosity = Verbosity(verbosity)
            error_class = None if error_class is None else ErrorClass(error_class)
        except ValueError as error:
            raise ValueError(f"not a status line value: {error}") from None
        line = StatusLine.now(
            status, message, verbosity=verbosity, epoch=epoch, max_epoch=self.max_epoch, step=step,
            time_per_epoch=None if time_per_epoch is None else float(time_per_epoch),
            eta=None if eta is None else float(eta), kpi=dict(kpi or {}), error_class=error_class,
        )
        if not self.enabled:
            return None
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line.to_json() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return line


def read_status(results_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of a run's status.json as written (tests and tools); an absent file reads as no records."""
    path = Path(results_dir) / STATUS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
