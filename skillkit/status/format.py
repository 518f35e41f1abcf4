"""One status.json line: the format both the trainer's writer and the engine's follower use (DESIGN.md §3).

The file is JSON Lines, one object per event. Every line this project writes carries the same keys:

    date (YYYY-MM-DD), time (HH:MM:SS), status (STARTED|RUNNING|SUCCESS|FAILURE), verbosity, message,
    epoch, max_epoch, step, time_per_epoch (s), eta (s), kpi

plus `error_class` (oom|data|spec|internal) on FAILURE lines. Epochs are numbered as TAO numbers them
(`skillkit.checkpoints`): `epoch` is the 0-based index of the epoch the line is about, `max_epoch` the
index of the last planned epoch (num_epochs - 1), so the line that closes the first epoch says
`"epoch": 0` and names the same epoch as `model_epoch_000_step_XXXXX.pth`. A validation result is a
RUNNING (or SUCCESS) line whose `kpi` holds the monitored metric; the STARTED line carries no epoch,
as TAO's `TAOStatusLogger.on_train_start` writes none.

Reading is lenient, because the engine may follow TAO's own trainer: TAO writes `date` as M/D/YYYY and
`time_per_epoch`/`eta` as `H:MM:SS.ffffff` text, and puts extra keys (`max_step`, `time_per_step`,
`categorical`, `graphical`); all are accepted. Lines written before this project numbered epochs like
TAO (its STARTED line carried the number of completed epochs, and every later `epoch` counted completed
epochs) are recognised by that STARTED line and shifted by one when read (`StatusLine.from_legacy`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from skillkit.states import ErrorClass, RunStatus, Verbosity

STATUS_FILE = "status.json"
CONTRACT_KEYS = ("date", "time", "status", "verbosity", "message", "epoch", "max_epoch", "step",
                 "time_per_epoch", "eta", "kpi")
_DURATION = re.compile(r"^(?:(?P<days>\d+) days?, )?(?P<h>\d+):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")


def plain(value: Any) -> Any:
    """JSON-safe plain value: tensors/numpy scalars become Python numbers, NaN/inf become null (JSON has
    neither), enums their value."""
    if isinstance(value, (RunStatus, Verbosity, ErrorClass)):
        return value.value
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _seconds(value: Any) -> float | None:
    """Seconds from a number or from TAO's `str(timedelta)` text ('0:01:02.5', '1 day, 2:00:00')."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            return (int(match["days"] or 0) * 86400 + int(match["h"]) * 3600 + int(match["m"]) * 60
                    + float(match["s"]))
    return None


def number(value: Any) -> float | None:
    """`value` as a finite float, or None (bools, text, NaN and infinities are no measurement)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclasses.dataclass(frozen=True)
class StatusLine:
    """One event of a run, exactly as the contract spells it."""

    status: RunStatus
    message: str = ""
    verbosity: Verbosity = Verbosity.INFO
    date: str | None = None
    time: str | None = None
    epoch: int | None = None
    max_epoch: int | None = None
    step: int | None = None
    time_per_epoch: float | None = None
    eta: float | None = None
    kpi: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    error_class: ErrorClass | None = None

    def __post_init__(self) -> None:
        if self.status == RunStatus.FAILURE and self.error_class is None:
            raise ValueError(f"a FAILURE line needs error_class in {[c.value for c in ErrorClass]}")

    # -- writing -------------------------------------------------------------------------------------------
    @classmethod
    def now(cls, status: RunStatus | str, message: str, **fields: Any) -> StatusLine:
        """A line stamped with the local date and time."""
        clock = _dt.datetime.now()
        return cls(status=RunStatus(status), message=message, date=clock.strftime("%Y-%m-%d"),
                   time=clock.strftime("%H:%M:%S"), **fields)

    def to_record(self) -> dict[str, Any]:
        """The JSON object of the line: the contract keys in order, `error_class` only on failures."""
        record: dict[str, Any] = {
            "date": self.date, "time": self.time, "status": self.status.value, "verbosity": self.verbosity.value,
            "message": self.message, "epoch": self.epoch, "max_epoch": self.max_epoch, "step": self.step,
            "time_per_epoch": self.time_per_epoch, "eta": self.eta, "kpi": plain(dict(self.kpi)),
        }
        if self.error_class is not None:
            record["error_class"] = self.error_class.value
        return plain(record)

    def to_json(self) -> str:
        return json.dumps(self.to_record(), sort_keys=False)

    # -- reading -------------------------------------------------------------------------------------------
    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> StatusLine | None:
        """The line a JSON object describes, or None when it is not a status line (no known `status`)."""
        try:
            status = RunStatus(record.get("status"))
        except ValueError:
            return None
        try:
            verbosity = Verbosity(record.get("verbosity") or Verbosity.INFO)
        except ValueError:
            verbosity = Verbosity.INFO
        try:
            error_class = ErrorClass(record["error_class"]) if record.get("error_class") else None
        except ValueError:
            error_class = ErrorClass.INTERNAL
        if status == RunStatus.FAILURE and error_class is None:
            error_class = ErrorClass.INTERNAL  # TAO's FAILURE lines carry no class
        kpi = record.get("kpi")
        date, clock = record.get("date"), record.get("time")
        return cls(
            status=status, message=str(record.get("message") or ""), verbosity=verbosity,
            date=date if isinstance(date, str) else None, time=clock if isinstance(clock, str) else None,
            epoch=_int(record.get("epoch")), max_epoch=_int(record.get("max_epoch")), step=_int(record.get("step")),
            time_per_epoch=_seconds(record.get("time_per_epoch")), eta=_seconds(record.get("eta")),
            kpi=dict(kpi) if isinstance(kpi, Mapping) else {}, error_class=error_class,
        )

    @property
    def starts_legacy_run(self) -> bool:
        """A STARTED line with an epoch: written by this project before it numbered epochs like TAO."""
        return self.status == RunStatus.STARTED and self.epoch is not None

    def from_legacy(self) -> StatusLine:
        """This line, written with the old numbering (epochs counted completed epochs), in TAO numbering."""
        return dataclasses.replace(
            self,
            epoch=None if self.epoch is None else max(self.epoch - 1, 0),
            max_epoch=None if self.max_epoch is None else self.max_epoch - 1,
        )

    def metric(self, name: str) -> float | None:
        """The finite value of KPI `name` on this line, or None."""
        return number(self.kpi.get(name))

    @property
    def timestamp(self) -> float | None:
        """Seconds since the epoch of the line's own date and time, or None."""
        return line_timestamp(self.date, self.time)


def line_timestamp(date: Any, clock: Any) -> float | None:
    """Seconds since the epoch of a status line's `date` and `time` (ours: ISO; TAO's: M/D/YYYY), or None."""
    if not (isinstance(date, str) and isinstance(clock, str)):
        return None
    for pattern in ("%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M:%S"):
        try:
            return _dt.datetime.strptime(f"{date} {clock}", pattern).timestamp()
        except ValueError:
            continue
    return None
