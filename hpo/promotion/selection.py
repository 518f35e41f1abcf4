"""Which trial and which epoch to promote.

The handoff must name the exact checkpoint that scored best, never a guessed "latest": a trial whose metric
peaks at epoch 3 of 10 is promoted with `model_epoch_003_step_*.pth`. The best epoch is read from the trial's
validation history (the engine's record of every status line with a KPI), restricted to epochs whose
checkpoint file still exists. Only COMPLETED trials compete by default: a pruned or failed trial's numbers
come from a run that was stopped or broke. `--trial` / `--epoch` pin the choice explicitly.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from skillkit.errors import UserError
from hpo.trials.record import PROMOTABLE_STATES

CHECKPOINT_PATTERN = re.compile(r"^model_epoch_(?P<epoch>\d+)_step_(?P<step>\d+)\.pth$")
ELIGIBLE_STATES = PROMOTABLE_STATES


class PromotionError(UserError):
    """Nothing can be promoted as asked (no successful trial, unknown trial or epoch, missing checkpoint)."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One (trial, epoch) that can be promoted: its metric and its checkpoint file."""

    trial: Mapping[str, Any]
    epoch: int
    step: int | None
    metric: float | None
    checkpoint: Path

    @property
    def trial_id(self) -> str:
        return str(self.trial["trial_id"])


def checkpoint_files(trial_dir: Path) -> dict[int, Path]:
    """Checkpoints in a trial folder by epoch (`model_epoch_XXX_step_XXXXX.pth`; the latest symlink is not one)."""
    found: dict[int, Path] = {}
    if trial_dir.is_dir():
        for path in trial_dir.iterdir():
            match = CHECKPOINT_PATTERN.match(path.name)
            if match and path.is_file() and not path.is_symlink():
                epoch = int(match["epoch"])
                if epoch not in found or int(match["step"]) > _step_of(found[epoch]):
                    found[epoch] = path
    return found


def _step_of(path: Path) -> int:
    match = CHECKPOINT_PATTERN.match(path.name)
    return int(match["step"]) if match else -1


def metric_value(entry: Mapping[str, Any], metric: str) -> float | None:
    value = (entry.get("kpi") or {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        return None
    return float(value)


def better(value: float, than: float | None, direction: str) -> bool:
    if than is None:
        return True
    return value > than if direction == "maximize" else value < than


def best_epoch(trial: Mapping[str, Any], trial_dir: Path, metric: str, direction: str, *,
               require_checkpoint: bool = True) -> Candidate | None:
    """The trial's best validated epoch (first one on ties) that still has its checkpoint."""
    checkpoints = checkpoint_files(trial_dir)
    best: Candidate | None = None
    for entry in sorted(trial.get("history") or [], key=lambda item: int(item.get("epoch", 0))):
        value = metric_value(entry, metric)
        epoch = int(entry.get("epoch", 0))
        if value is None:
            continue
        checkpoint = _checkpoint_for(entry, trial_dir, checkpoints, epoch)
        if checkpoint is None and require_checkpoint:
            continue
        if best is None or better(value, best.metric, direction):
            best = Candidate(trial, epoch, entry.get("step"), value, checkpoint or trial_dir / "<missing>")
    return best


def _checkpoint_for(entry: Mapping[str, Any], trial_dir: Path, checkpoints: Mapping[int, Path], epoch: int) -> Path | None:
    named = entry.get("checkpoint")
    if named:
        path = trial_dir / Path(str(named)).name
        if path.is_file():
            return path
    step = entry.get("step")
    if isinstance(step, int):
        exact = trial_dir / f"model_epoch_{epoch:03d}_step_{step:05d}.pth"
        if exact.is_file():
            return exact
    return checkpoints.get(epoch)


def select(trials: Iterable[Mapping[str, Any]], sweep_dir: Path, metric: str, direction: str, *,
           trial_id: str | None = None, epoch: int | None = None,
           states: tuple[str, ...] = ELIGIBLE_STATES) -> Candidate:
    """The candidate to promote: the best eligible trial's best epoch, or the pinned trial/epoch."""
    trials = list(trials)
    if trial_id is not None:
        matches = [t for t in trials if str(t.get("trial_id")) == str(trial_id)]
        if not matches:
            known = ", ".join(str(t.get("trial_id")) for t in trials) or "none"
            raise PromotionError(f"--trial {trial_id}: no such trial in '{sweep_dir}' (trials: {known}).")
        trial = matches[0]
        if trial.get("state") == "FAILED":
            raise PromotionError(
                f"--trial {trial_id}: the trial FAILED ({trial.get('failure_class')}: {trial.get('failure_reason')}); "
                "failed trials are never promoted."
            )
        return _pinned(trial, sweep_dir / "trials" / str(trial_id), metric, direction, epoch)
    if epoch is not None:
        raise PromotionError("--epoch needs --trial: an epoch number only means something within one trial.")
    best: Candidate | None = None
    for trial in trials:
        if trial.get("state") not in states:
            continue
        candidate = best_epoch(trial, sweep_dir / "trials" / str(trial.get("trial_id")), metric, direction)
        if candidate is not None and (best is None or better(candidate.metric, best.metric, direction)):  # type: ignore[arg-type]
            best = candidate
    if best is None:
        counts = ", ".join(f"{t.get('trial_id')}={t.get('state')}" for t in trials) or "no trials"
        raise PromotionError(
            f"sweep '{sweep_dir}' has no promotable trial: promotion needs a trial in state "
            f"{'/'.join(states)} with a validated '{metric}' and its checkpoint file ({counts})."
        )
    return best


def _pinned(trial: Mapping[str, Any], trial_dir: Path, metric: str, direction: str, epoch: int | None) -> Candidate:
    if epoch is None:
        candidate = best_epoch(trial, trial_dir, metric, direction)
        if candidate is None:
            raise PromotionError(
                f"trial {trial.get('trial_id')} has no validated '{metric}' with a checkpoint in '{trial_dir}'."
            )
        return candidate
    checkpoints = checkpoint_files(trial_dir)
    entries = [entry for entry in trial.get("history") or [] if int(entry.get("epoch", -1)) == epoch]
    entry = entries[-1] if entries else {}
    checkpoint = _checkpoint_for(entry, trial_dir, checkpoints, epoch)
    if checkpoint is None:
        have = ", ".join(str(e) for e in sorted(checkpoints)) or "none"
        raise PromotionError(
            f"--epoch {epoch}: trial {trial.get('trial_id')} has no checkpoint for that epoch in '{trial_dir}' "
            f"(epochs with checkpoints: {have})."
        )
    step = entry.get("step") if entry else _step_of(checkpoint)
    return Candidate(trial, epoch, step, metric_value(entry, metric) if entry else None, checkpoint)
