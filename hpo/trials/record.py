"""`trial.json`: the engine's record of one trial (its history feeds summary.json, MLflow and promotion).

A `TrialRecord` is owned by exactly one writer at a time (the thread driving the trial for Optuna, the
driver's Ray callback for Ray) and saved atomically after every change, so `hpo status` in another terminal
and a resumed driver always read a whole file. History is keyed by epoch, TAO's 0-based index as in
status.json and the checkpoint names: a resumed trial that re-reads its status.json, or a Ray trial that
replays results after a restore, never duplicates an entry. Each history entry is a whole status line
(`Validation.to_history`), so no consumer needs the trial's status.json again.

Records written before TAO numbering (no `epoch_numbering` key) counted completed epochs; `from_dict`
converts their history once (the checkpoint names they hold are kept: they name the files on disk).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpo import selection
from skillkit.checkpoints import epochs_trained
from skillkit.files import TRIAL_FILE, atomic_write_json
from skillkit.states import FailureClass, TrialState
from skillkit.status import Validation

EPOCH_NUMBERING = "tao"  # trial.json `epoch_numbering`: history epochs are TAO's 0-based indices
RUNNING, COMPLETED, PRUNED, PAUSED, FAILED = (TrialState.RUNNING, TrialState.COMPLETED, TrialState.PRUNED,
                                              TrialState.PAUSED, TrialState.FAILED)
PROMOTABLE_STATES = selection.PROMOTABLE_STATES
STATES = tuple(TrialState)
FINISHED_STATES = tuple(state for state in TrialState if state.finished)
FAILURE_CLASSES = tuple(failure_class.value for failure_class in FailureClass)


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class TrialRecord:
    """Mutable record of one trial; `to_dict()` is exactly the trial.json object of the contract, plus
    `lineage` (PBT exploits: when, from whom, with which new params)."""

    trial_id: str
    number: int
    params: dict[str, Any]
    metric: str
    direction: str
    state: TrialState = TrialState.RUNNING
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
        """TAO index of the newest validated epoch, None before the first validation."""
        return self.history[-1]["epoch"] if self.history else None

    def epochs_trained(self) -> int:
        """Epochs trained up to the newest validation (the budget's unit; 0 before the first one)."""
        last = self.last_epoch()
        return 0 if last is None else epochs_trained(last)

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
        """(epoch, value) of every validation whose metric counts (`hpo.selection`)."""
        return [(entry["epoch"], value) for entry in self.history
                if (value := selection.entry_value(entry, self.metric)) is not None]

    def best_value(self) -> float | None:
        return self.best["metric"] if self.best else None

    def _update_best(self) -> None:
        entry = selection.best_epoch(self.history, self.metric, self.direction)
        self.best = None if entry is None else {
            "epoch": entry["epoch"], "step": entry.get("step"), "metric": selection.entry_value(entry, self.metric),
            "checkpoint": entry.get("checkpoint"),
        }

    # -- state ---------------------------------------------------------------------------------------------
    def finish(self, state: str, *, failure_class: str | None = None, failure_reason: str | None = None) -> None:
        state = TrialState(state)
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
            "lineage": list(self.lineage), "epoch_numbering": EPOCH_NUMBERING,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, metric: str | None = None, direction: str | None = None) -> TrialRecord:
        history = [dict(entry) for entry in data.get("history") or []]
        best = dict(data["best"]) if data.get("best") else None
        if data.get("epoch_numbering") != EPOCH_NUMBERING:
            for entry in [*history, *([best] if best else [])]:  # old numbering: completed epochs
                if isinstance(entry.get("epoch"), int):
                    entry["epoch"] = max(entry["epoch"] - 1, 0)
        record = cls(
            trial_id=str(data["trial_id"]), number=int(data["number"]), params=dict(data.get("params") or {}),
            metric=metric or data.get("metric", "mIoU"), direction=direction or data.get("direction", "maximize"),
            state=TrialState(data.get("state", RUNNING)), failure_class=data.get("failure_class"),
            failure_reason=data.get("failure_reason"), history=history,
            best=best, started_at=data.get("started_at") or now_iso(), ended_at=data.get("ended_at"),
            resources=dict(data.get("resources") or {}), mlflow_run_id=data.get("mlflow_run_id"),
            lineage=list(data.get("lineage") or []),
        )
        return record

    def save(self, trial_dir: Path) -> None:
        atomic_write_json(trial_dir / TRIAL_FILE, self.to_dict())

    @classmethod
    def load(cls, trial_dir: Path, **kwargs: Any) -> TrialRecord:
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
    """The best trial by its best validation, among trials in PROMOTABLE_STATES (`hpo.selection`)."""
    return selection.best_trial(records, best_value=TrialRecord.best_value, number=lambda r: r.number,
                                state=lambda r: r.state, direction=direction)
