"""`results_dir/status.json`: the trainer's half of the engine–trainer contract (DESIGN.md §3).

The file is JSON Lines, one object per event, appended and flushed line by line so a reader polling the
file (the HPO engine, a person with `tail -f`) never sees half a record. Every line carries the same keys:

    date (YYYY-MM-DD), time (HH:MM:SS), status (STARTED|RUNNING|SUCCESS|FAILURE),
    verbosity (INFO|WARNING|ERROR), message, epoch, max_epoch, step, time_per_epoch (s), eta (s), kpi

plus `error_class` (oom|data|spec|internal) on FAILURE lines. `epoch` is always the number of COMPLETED
epochs. A validation result is a RUNNING line whose `kpi` holds `mIoU`; RUNNING lines written at the end of
an epoch without validation carry only `train_loss` and `lr` in `kpi`.

Only the global-zero process writes (the writer is created with `enabled=False` elsewhere), so a
multi-GPU run yields one line per event, not one per process.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

STATUS_FILENAME = "status.json"

STARTED = "STARTED"
RUNNING = "RUNNING"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"

INFO = "INFO"
WARNING = "WARNING"
ERROR = "ERROR"

ERROR_CLASSES = ("oom", "data", "spec", "internal")


def _plain(value: Any) -> Any:
    """JSON-safe plain value: tensors/numpy scalars become floats, NaN/inf become null (JSON has neither)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class StatusWriter:
    """Appends contract-shaped lines to `<results_dir>/status.json`.

    Args:
        results_dir: folder of the run; created if missing.
        max_epoch: total epochs planned (repeated on every line, as TAO does).
        enabled: False on non-zero ranks, so calls are no-ops there.
    """

    def __init__(self, results_dir: str | os.PathLike[str], *, max_epoch: int | None, enabled: bool = True) -> None:
        self.path = Path(results_dir) / STATUS_FILENAME
        self.max_epoch = max_epoch
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(
        self,
        status: str,
        message: str,
        *,
        verbosity: str = INFO,
        epoch: int | None = None,
        step: int | None = None,
        time_per_epoch: float | None = None,
        eta: float | None = None,
        kpi: Mapping[str, Any] | None = None,
        error_class: str | None = None,
    ) -> dict[str, Any] | None:
        """Append one line and flush it to disk; returns the record written (None when disabled)."""
        if status not in (STARTED, RUNNING, SUCCESS, FAILURE):
            raise ValueError(f"status must be one of STARTED, RUNNING, SUCCESS, FAILURE, got {status!r}")
        if status == FAILURE and error_class not in ERROR_CLASSES:
            raise ValueError(f"a FAILURE line needs error_class in {ERROR_CLASSES}, got {error_class!r}")
        if not self.enabled:
            return None
        now = _dt.datetime.now()
        record: dict[str, Any] = {
            "date": now.strftime("%Y-%m-%d"),
            "time": now.strftime("%H:%M:%S"),
            "status": status,
            "verbosity": verbosity,
            "message": message,
            "epoch": epoch,
            "max_epoch": self.max_epoch,
            "step": step,
            "time_per_epoch": None if time_per_epoch is None else float(time_per_epoch),
            "eta": None if eta is None else float(eta),
            "kpi": _plain(dict(kpi or {})),
        }
        if error_class is not None:
            record["error_class"] = error_class
        line = json.dumps(_plain(record), sort_keys=False)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return record


def read_status(results_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of a run's status.json (tests and tools); an absent file reads as no records."""
    path = Path(results_dir) / STATUS_FILENAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
