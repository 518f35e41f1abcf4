"""Following a trainer's `status.json` while it is being written (format: `skillkit.status.format`).

The trainer appends one complete line per event and flushes it; a reader polling the file may still catch
a line without its newline (the writer is mid-write) or a line cut short by a crash. `StatusFollower` keeps a
byte offset and hands out only complete lines, so each event is seen exactly once however often it polls;
if the file shrinks (a trainer that rewrites it) the follower starts over and the caller dedupes by epoch.
Lines of a run started by this project's old numbering are converted to TAO's as they are read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from skillkit.checkpoints import epochs_trained
from skillkit.states import RunStatus
from skillkit.status.format import STATUS_FILE, StatusLine, number

__all__ = ["STATUS_FILE", "StatusFollower", "Validation", "read_lines", "read_validations", "validation_of"]


@dataclasses.dataclass(frozen=True)
class Validation:
    """One validation result of a run: a status line whose `kpi` holds the monitored metric.

    It carries the whole line (date, time, step, durations, every KPI), so no consumer needs to open
    status.json again; `seen_at` is when the engine read it (engine clock, seconds since the epoch).
    """

    line: StatusLine
    metric: str
    value: float
    seen_at: float

    @property
    def epoch(self) -> int:
        """TAO's 0-based epoch index (the number in the checkpoint's name)."""
        return int(self.line.epoch)  # type: ignore[arg-type]  # validation_of only builds one with an epoch

    @property
    def epochs_trained(self) -> int:
        """Epochs trained when this validation ran: the resource schedulers and budgets count."""
        return epochs_trained(self.epoch)

    @property
    def step(self) -> int | None:
        return self.line.step

    @property
    def kpi(self) -> dict[str, Any]:
        return dict(self.line.kpi)

    def to_history(self) -> dict[str, Any]:
        """The trial.json history entry: the status line's fields plus when the engine saw it."""
        line = self.line
        return {
            "epoch": self.epoch, "step": line.step, "kpi": dict(line.kpi), "date": line.date, "time": line.time,
            "time_per_epoch": line.time_per_epoch, "eta": line.eta, "max_epoch": line.max_epoch,
            "status": line.status.value, "message": line.message, "seen_at": self.seen_at,
        }

    @classmethod
    def from_history(cls, entry: dict[str, Any], metric: str) -> Validation | None:
        """The validation a history entry (or a backend's result carrying the same keys) describes."""
        record = {"status": entry.get("status") or RunStatus.RUNNING.value, **entry}
        line = StatusLine.from_record(record)
        seen_at = number(entry.get("seen_at"))
        return validation_of(line, metric, now=seen_at if seen_at is not None else 0.0) if line else None


class StatusFollower:
    """Incremental reader of one status.json; `poll()` returns the lines appended since the last call."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._offset = 0
        self._pending = b""
        self._legacy = False

    def skip_existing(self) -> None:
        """Start after what the file holds now (lines of earlier runs were read before)."""
        try:
            self._offset = os.path.getsize(self.path)
        except OSError:
            self._offset = 0
        self._pending = b""

    def poll(self) -> list[StatusLine]:
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return []
        if size < self._offset:
            self._offset, self._pending, self._legacy = 0, b"", False
        if size == self._offset:
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read(size - self._offset)
        self._offset += len(chunk)
        data = self._pending + chunk
        raw_lines = data.split(b"\n")
        self._pending = raw_lines.pop()  # b"" when the chunk ended with a newline, else a partial line
        lines = []
        for raw in raw_lines:
            raw = raw.strip()
            if not raw:
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash, followed by a newline from a later writer
            line = StatusLine.from_record(record) if isinstance(record, dict) else None
            if line is None:
                continue
            if line.status == RunStatus.STARTED:
                self._legacy = line.starts_legacy_run
            lines.append(line.from_legacy() if self._legacy else line)
        return lines


def validation_of(line: StatusLine, metric: str, *, now: float | None = None) -> Validation | None:
    """The validation `line` carries for `metric`, or None (other statuses, lines without it or an epoch).

    A NaN (TAO writes `float(miou)` as is) is still a validation: the run diverged, and the selection rule
    (`hpo.selection`) decides that it is never best.
    """
    value = line.kpi.get(metric)
    if line.status not in (RunStatus.RUNNING, RunStatus.SUCCESS) or line.epoch is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return Validation(line=line, metric=metric, value=float(value), seen_at=time.time() if now is None else now)


def read_lines(path: str | os.PathLike[str]) -> list[StatusLine]:
    """Every status line of a file (old numbering converted); an absent file has none."""
    return StatusFollower(path).poll()


def read_validations(path: str | os.PathLike[str], metric: str) -> list[Validation]:
    """All validations recorded in a run's status.json, one per epoch (the last line wins)."""
    by_epoch: dict[int, Validation] = {}
    for line in read_lines(path):
        found = validation_of(line, metric, now=0.0)
        if found is not None:
            by_epoch[found.epoch] = found
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]
