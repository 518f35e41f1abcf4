"""Which trial and which epoch to promote, with the checkpoint that scored it (the rule for "best" itself is
`hpo.selection`'s). Promotion, the sweep summary and `hpo compare` all pick through `select` here; it sits with
the trial records, below both promotion and tracking, so neither has to import the other for it.

The handoff must name the exact checkpoint that scored best, never a guessed "latest": a trial whose metric
peaks at epoch 3 of 10 is promoted with `model_epoch_003_step_*.pth`. Everything comes from the trial records
promotion is given: each validation in a record's history names the checkpoint file the trainer wrote for
it, and only epochs whose file still exists compete (retention may have removed others). Nothing here reads
status.json or parses a file name. `--trial` / `--epoch` pin the choice explicitly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hpo import selection
from hpo.trials.record import TrialRecord
from skillkit.errors import UserError
from skillkit.files import TRIALS_DIR
from skillkit.states import TrialState

ELIGIBLE_STATES = selection.PROMOTABLE_STATES


class PromotionError(UserError):
    """Nothing can be promoted as asked (no successful trial, unknown trial or epoch, missing checkpoint)."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One (trial, epoch) that can be promoted: its metric and its checkpoint file."""

    trial: TrialRecord
    epoch: int
    step: int | None
    metric: float | None
    checkpoint: Path

    @property
    def trial_id(self) -> str:
        return self.trial.trial_id


def as_record(trial: TrialRecord | Mapping[str, Any]) -> TrialRecord:
    """A trial as its record (summary.json and trial.json hold the same object)."""
    return trial if isinstance(trial, TrialRecord) else TrialRecord.from_dict(trial)


def checkpoint_of(entry: Mapping[str, Any], trial_dir: Path) -> Path | None:
    """The checkpoint file a history entry names, when it still exists."""
    name = entry.get("checkpoint")
    if not name:
        return None
    path = trial_dir / Path(str(name)).name
    return path if path.is_file() else None


def best_epoch(trial: TrialRecord | Mapping[str, Any], trial_dir: Path, metric: str,
               direction: str) -> Candidate | None:
    """The trial's best validated epoch that still has its checkpoint (earliest on a tie)."""
    record = as_record(trial)
    entry = selection.best_epoch(record.history, metric, direction,
                                 usable=lambda item: checkpoint_of(item, trial_dir) is not None)
    if entry is None:
        return None
    return Candidate(record, int(entry["epoch"]), entry.get("step"), selection.entry_value(entry, metric),
                     checkpoint_of(entry, trial_dir))  # type: ignore[arg-type]  # usable() checked it exists


def select(trials: Iterable[TrialRecord | Mapping[str, Any]], sweep_dir: Path, metric: str, direction: str, *,
           trial_id: str | None = None, epoch: int | None = None,
           states: tuple[str, ...] = ELIGIBLE_STATES) -> Candidate:
    """The candidate to promote: the best eligible trial's best epoch, or the pinned trial/epoch."""
    records = [as_record(trial) for trial in trials]
    trials_dir = sweep_dir / TRIALS_DIR
    if trial_id is not None:
        matches = [r for r in records if r.trial_id == str(trial_id)]
        if not matches:
            known = ", ".join(r.trial_id for r in records) or "none"
            raise PromotionError(f"--trial {trial_id}: no such trial in '{sweep_dir}' (trials: {known}).")
        record = matches[0]
        if record.state == TrialState.FAILED:
            raise PromotionError(
                f"--trial {trial_id}: the trial FAILED ({record.failure_class}: {record.failure_reason}); "
                "failed trials are never promoted."
            )
        return _pinned(record, trials_dir / record.trial_id, metric, direction, epoch)
    if epoch is not None:
        raise PromotionError("--epoch needs --trial: an epoch number only means something within one trial.")
    found = {r.trial_id: best_epoch(r, trials_dir / r.trial_id, metric, direction) for r in records}
    candidates = {trial: candidate for trial, candidate in found.items() if candidate is not None}
    winner = selection.best_trial(
        [r for r in records if r.trial_id in candidates], direction=direction, states=states,
        best_value=lambda r: candidates[r.trial_id].metric, number=lambda r: r.number, state=lambda r: r.state,
    )
    if winner is None:
        counts = ", ".join(f"{r.trial_id}={r.state}" for r in records) or "no trials"
        raise PromotionError(
            f"sweep '{sweep_dir}' has no promotable trial: promotion needs a trial in state "
            f"{'/'.join(states)} with a validated '{metric}' and its checkpoint file ({counts})."
        )
    return candidates[winner.trial_id]


def _pinned(record: TrialRecord, trial_dir: Path, metric: str, direction: str, epoch: int | None) -> Candidate:
    if epoch is None:
        candidate = best_epoch(record, trial_dir, metric, direction)
        if candidate is None:
            raise PromotionError(
                f"trial {record.trial_id} has no validated '{metric}' with a checkpoint in '{trial_dir}'."
            )
        return candidate
    entries = [entry for entry in record.history if int(entry["epoch"]) == epoch]
    checkpoint = checkpoint_of(entries[-1], trial_dir) if entries else None
    if checkpoint is None:
        have = ", ".join(str(e["epoch"]) for e in record.history if checkpoint_of(e, trial_dir)) or "none"
        raise PromotionError(
            f"--epoch {epoch}: trial {record.trial_id} has no validated checkpoint for that epoch in '{trial_dir}' "
            f"(validated epochs with checkpoints: {have}; epochs are numbered from 0, as in the file names)."
        )
    entry = entries[-1]
    return Candidate(record, epoch, entry.get("step"), selection.entry_value(entry, metric), checkpoint)
