"""Following a trainer's `status.json` (JSON Lines, DESIGN.md §3) while it is being written.

The trainer appends one complete line per event and flushes it; a reader polling the file may still catch
a line without its newline (the writer is mid-write) or a line cut short by a crash. `StatusFollower` keeps a
byte offset and hands out only complete lines, so each event is seen exactly once however often it polls;
if the file shrinks (a trainer that rewrites it) the follower starts over and the caller dedupes by epoch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

STATUS_FILE = "status.json"


@dataclass(frozen=True)
class Validation:
    """One validation result of a trial: a RUNNING line whose `kpi` holds the sweep's metric."""

    epoch: int
    step: int | None
    value: float
    kpi: Mapping[str, Any]
    time: float

    def to_history(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "kpi": dict(self.kpi), "time": self.time}


class StatusFollower:
    """Incremental reader of one status.json; `poll()` returns the events appended since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._pending = b""

    def skip_existing(self) -> None:
        """Start after what the file holds now (lines of earlier runs were read before)."""
        try:
            self._offset = os.path.getsize(self.path)
        except OSError:
            self._offset = 0
        self._pending = b""

    def poll(self) -> list[dict[str, Any]]:
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return []
        if size < self._offset:
            self._offset, self._pending = 0, b""
        if size == self._offset:
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read(size - self._offset)
        self._offset += len(chunk)
        data = self._pending + chunk
        lines = data.split(b"\n")
        self._pending = lines.pop()  # b"" when the chunk ended with a newline, else a partial line
        events = []
        for raw in lines:
            raw = raw.strip()
            if not raw:
                continue
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash, followed by a newline from a later writer
            if isinstance(event, dict):
                events.append(event)
        return events


def validation_of(event: Mapping[str, Any], metric: str, *, now: float) -> Validation | None:
    """The validation carried by `event` for `metric`, or None (non-RUNNING lines, epoch lines without it)."""
    kpi = event.get("kpi")
    if event.get("status") not in ("RUNNING", "SUCCESS") or not isinstance(kpi, Mapping):
        return None
    value = kpi.get(metric)
    epoch = event.get("epoch")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not isinstance(epoch, int):
        return None
    step = event.get("step")
    return Validation(epoch=epoch, step=step if isinstance(step, int) else None, value=float(value), kpi=dict(kpi), time=now)


def read_validations(path: Path, metric: str) -> list[Validation]:
    """All validations recorded in a finished trial's status.json, one per epoch (the last line wins)."""
    follower = StatusFollower(path)
    by_epoch: dict[int, Validation] = {}
    for event in follower.poll():
        found = validation_of(event, metric, now=0.0)
        if found is not None:
            by_epoch[found.epoch] = found
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]
