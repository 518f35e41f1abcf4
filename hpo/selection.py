"""What "best" means, decided once for everything that picks a trial or an epoch.

The live table, summary.json, the MLflow parent run, the plots, job chains (`--checkpoint best`) and
promotion all call these functions, so they cannot disagree:

- Direction: `maximize` or `minimize`; when a config leaves it out, metrics whose name contains "loss"
  are minimised and every other metric maximised (`infer_direction`).
- A value counts only when it is a finite number. NaN (a diverged validation), infinities, booleans and
  missing values are never best, and never hide an earlier finite value of the same trial.
- Best epoch of a trial: its best counting value; on a tie the EARLIEST epoch wins (the same score for
  fewer epochs trained, and the checkpoint a re-run reaches first).
- Best trial: among trials whose state may be promoted (COMPLETED only: a pruned or paused trial's
  numbers come from a shorter budget, a failed one's from a run that broke), the one whose best epoch is
  best; on a tie the trial with the LOWEST number (started first) wins.
- A caller may further restrict the epochs that compete (promotion: only epochs whose checkpoint file
  still exists) by passing `usable`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

from skillkit.states import TrialState

MAXIMIZE: Final = "maximize"
MINIMIZE: Final = "minimize"
DIRECTIONS = (MAXIMIZE, MINIMIZE)
PROMOTABLE_STATES: tuple[TrialState, ...] = (TrialState.COMPLETED,)

Entry = Mapping[str, Any]
T = TypeVar("T")


def infer_direction(metric: str) -> str:
    """`minimize` for loss-like metric names, `maximize` for everything else."""
    return MINIMIZE if "loss" in metric.lower() else MAXIMIZE


def metric_value(kpi: Mapping[str, Any] | None, metric: str) -> float | None:
    """The counting value of `metric` in a KPI mapping: a finite number, else None."""
    value = (kpi or {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        return None
    return float(value)


def entry_value(entry: Entry, metric: str) -> float | None:
    """The counting value of `metric` in a validation history entry (`{"epoch", "kpi", ...}`)."""
    return metric_value(entry.get("kpi"), metric)


def better(value: float | None, than: float | None, direction: str) -> bool:
    """Whether `value` strictly beats `than` (ties are not better: the first one seen stays best)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if value is None or not math.isfinite(value):
        return False
    if than is None or not math.isfinite(than):
        return True
    return value > than if direction == MAXIMIZE else value < than


def best_of(items: Iterable[T], value: Callable[[T], float | None], direction: str) -> T | None:
    """The first item with the best counting value (None when no item has one), in the given order."""
    best: T | None = None
    best_value: float | None = None
    for item in items:
        candidate = value(item)
        if better(candidate, best_value, direction):
            best, best_value = item, candidate
    return best


def best_epoch(history: Iterable[Entry], metric: str, direction: str, *,
               usable: Callable[[Entry], bool] | None = None) -> Entry | None:
    """The history entry of the trial's best epoch (earliest on a tie), among `usable` entries."""
    entries = sorted((entry for entry in history if usable is None or usable(entry)), key=lambda e: int(e["epoch"]))
    return best_of(entries, lambda entry: entry_value(entry, metric), direction)


def is_best_so_far(history: Iterable[Entry], entry: Entry, metric: str, direction: str) -> bool:
    """Whether `entry` is its trial's best epoch among itself and the entries of `history` before it: the
    trial's best-so-far when it was validated (a tie with an earlier epoch is not, by the rule above)."""
    epoch = int(entry["epoch"])
    earlier = [e for e in history if int(e["epoch"]) < epoch]
    best = best_epoch([*earlier, entry], metric, direction)
    return best is not None and int(best["epoch"]) == epoch


def best_trial(trials: Iterable[T], *, best_value: Callable[[T], float | None], number: Callable[[T], int],
               state: Callable[[T], str], direction: str,
               states: Sequence[str] = PROMOTABLE_STATES) -> T | None:
    """The best trial among those in `states` (lowest number on a tie), judged by `best_value`."""
    eligible = sorted((trial for trial in trials if state(trial) in states), key=number)
    return best_of(eligible, best_value, direction)
