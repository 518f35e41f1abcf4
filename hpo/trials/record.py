"""`trial.json` and `summary.json`: the engine's record of every trial (contract in /tmp/contracts.md §Workspace).

A `TrialRecord` is owned by exactly one writer at a time (the thread driving the trial for Optuna, the
driver's Ray callback for Ray) and saved atomically after every change, so `hpo status` in another terminal
and a resumed driver always read a whole file. History is keyed by epoch: a resumed trial that re-reads its
status.json, or a Ray trial that replays results after a restore, never duplicates an entry.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from hpo.sweep.workspace import TRIAL_FILE, atomic_write_json
from skillkit.status.follower import Validation

RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
PRUNED = "PRUNED"
PAUSED = "PAUSED"
FAILED = "FAILED"
# Only a trial that ran its whole epoch budget can be "best": a pruned or paused trial's numbers come from
# a shorter budget (comparing them with full runs is the partial-score flaw), a failed one's from a
# diverging or crashing run. Promotion uses the same rule.
PROMOTABLE_STATES = (COMPLETED,)
STATES = (RUNNING, COMPLETED, PRUNED, PAUSED, FAILED)
FINISHED_STATES = (COMPLETED, PRUNED, FAILED)
FAILURE_CLASSES = ("oom", "data", "spec", "killed", "timeout", "internal")


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def is_better(value: float, than: float | None, direction: str) -> bool:
    if than is None or (isinstance(than, float) and math.isnan(than)):
        return not math.isnan(value)
    return value > than if direction == "maximize" else value < than


@dataclass
class TrialRecord:
    """Mutable record of one trial; `to_dict()` is exactly the trial.json object of the contract, plus
    `lineage` (PBT exploits: when, from whom, with which new params)."""

    trial_id: str
    number: int
    params: dict[str, Any]
    metric: str
    direction: str
    state: str = RUNNING
    failure_class: str | None = None
    failure_reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    started_at: str = field(default_factory=now_iso)
    ended_at: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    lineage: list[dict[str, Any]] = field(default_factory=list)

    # -- history -------------------------------------------------------------------------------------------
    def epochs(self) -> list[int]:
        return [entry["epoch"] for entry in self.history]

    def last_epoch(self) -> int | None:
        return self.history[-1]["epoch"] if self.history else None

    def add_validation(self, validation: Validation, checkpoint: str | None) -> bool:
        """Record a validation (replacing an older entry for the same epoch); True when it was new."""
        entry = validation.to_history()
        if checkpoint:
            entry["checkpoint"] = checkpoint
        new = True
        for index, existing in enumerate(self.history):
            if existing["epoch"] == validation.epoch:
                self.history[index] = entry
                new = False
                break
        else:
            self.history.append(entry)
            self.history.sort(key=lambda item: item["epoch"])
        self._update_best()
        return new

    def metric_values(self) -> list[tuple[int, float]]:
        values = []
        for entry in self.history:
            value = entry.get("kpi", {}).get(self.metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                values.append((entry["epoch"], float(value)))
        return values

    def best_value(self) -> float | None:
        return self.best["metric"] if self.best else None

    def _update_best(self) -> None:
        best: dict[str, Any] | None = None
        for entry in self.history:
            value = entry.get("kpi", {}).get(self.metric)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                continue
            if best is None or is_better(float(value), best["metric"], self.direction):
                best = {"epoch": entry["epoch"], "step": entry.get("step"), "metric": float(value),
                        "checkpoint": entry.get("checkpoint")}
        self.best = best

    # -- state ---------------------------------------------------------------------------------------------
    def finish(self, state: str, *, failure_class: str | None = None, failure_reason: str | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"unknown trial state {state!r}")
        if state == FAILED and failure_class not in FAILURE_CLASSES:
            raise ValueError(f"a FAILED trial needs failure_class in {FAILURE_CLASSES}, got {failure_class!r}")
        self.state = state
        self.failure_class = failure_class if state == FAILED else None
        self.failure_reason = failure_reason if state == FAILED else None
        self.ended_at = None if state == RUNNING else now_iso()

    def reopen(self) -> None:
        """A paused or interrupted trial runs again."""
        self.state, self.failure_class, self.failure_reason, self.ended_at = RUNNING, None, None, None

    # -- files ---------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id, "number": self.number, "params": dict(self.params), "state": self.state,
            "failure_class": self.failure_class, "failure_reason": self.failure_reason,
            "history": list(self.history), "best": dict(self.best) if self.best else None,
            "started_at": self.started_at, "ended_at": self.ended_at, "resources": dict(self.resources),
            "mlflow_run_id": self.mlflow_run_id, "metric": self.metric, "direction": self.direction,
            "lineage": list(self.lineage),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, metric: str | None = None, direction: str | None = None) -> "TrialRecord":
        record = cls(
            trial_id=str(data["trial_id"]), number=int(data["number"]), params=dict(data.get("params") or {}),
            metric=metric or data.get("metric", "mIoU"), direction=direction or data.get("direction", "maximize"),
            state=data.get("state", RUNNING), failure_class=data.get("failure_class"),
            failure_reason=data.get("failure_reason"), history=list(data.get("history") or []),
            best=data.get("best"), started_at=data.get("started_at") or now_iso(), ended_at=data.get("ended_at"),
            resources=dict(data.get("resources") or {}), mlflow_run_id=data.get("mlflow_run_id"),
            lineage=list(data.get("lineage") or []),
        )
        return record

    def save(self, trial_dir: Path) -> None:
        atomic_write_json(trial_dir / TRIAL_FILE, self.to_dict())

    @classmethod
    def load(cls, trial_dir: Path, **kwargs: Any) -> "TrialRecord":
        return cls.from_dict(json.loads((trial_dir / TRIAL_FILE).read_text()), **kwargs)


def load_records(trials_dir: Path) -> list[TrialRecord]:
    """Every trial.json under `trials_dir`, by trial number."""
    records = []
    if trials_dir.is_dir():
        for folder in sorted(trials_dir.iterdir()):
            if (folder / TRIAL_FILE).is_file():
                try:
                    records.append(TrialRecord.load(folder))
                except (json.JSONDecodeError, KeyError):
                    continue
    return sorted(records, key=lambda r: (r.number, r.trial_id))


def best_trial(records: Iterable[TrialRecord], direction: str) -> TrialRecord | None:
    """The best trial by its best validation, among trials in PROMOTABLE_STATES."""
    best: TrialRecord | None = None
    for record in records:
        if record.state not in PROMOTABLE_STATES or record.best is None:
            continue
        if best is None or is_better(record.best["metric"], best.best["metric"], direction):  # type: ignore[index]
            best = record
    return best
