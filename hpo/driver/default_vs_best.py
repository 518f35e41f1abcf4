"""Default vs best: the schema-default configuration's score next to the best found after the same epochs.

Why: a sweep's best score alone does not say whether the search helped; the score the skill's defaults reach
with the same training is the reference a user would have got without AutoML. The default configuration is
a trial whose searched parameters all equal their schema defaults (the `mfbo` algorithm runs it first;
any algorithm's plan may contain it). "Same epochs": the default trial's last validated epoch E; the best
is the best value any trial reached at an epoch <= E, so a trial that trained longer gets no advantage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from hpo.backends.mfbo_sampler import default_values
from hpo.space import SearchSpace
from hpo.trials.record import TrialRecord, epochs_trained


def _same(value: Any, default: Any) -> bool:
    if isinstance(default, float) or isinstance(value, float):
        try:
            return math.isclose(float(value), float(default), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return value == default


def default_trial(records: Iterable[TrialRecord], space: SearchSpace) -> TrialRecord | None:
    """The first trial that ran every searched parameter at its schema default, or None (a default outside
    the searched range, a list or relational parameter: the defaults are not one point of this space)."""
    defaults = default_values(space)
    if not space.names or any(name not in defaults for name in space.names):
        return None
    for record in sorted(records, key=lambda r: r.number):
        if record.metric_values() and all(_same(record.params.get(n), defaults[n]) for n in space.names):
            return record
    return None


def _best_until(record: TrialRecord, epoch: int, direction: str) -> float | None:
    values = [value for e, value in record.metric_values() if e <= epoch]
    if not values:
        return None
    return max(values) if direction == "maximize" else min(values)


def compare(records: list[TrialRecord], space: SearchSpace, direction: str) -> dict[str, Any] | None:
    """{default_trial, epochs, default, best_trial, best, ratio} or None when no trial ran the defaults."""
    reference = default_trial(records, space)
    if reference is None:
        return None
    epoch = max(e for e, _ in reference.metric_values())
    default = _best_until(reference, epoch, direction)
    scored = [(value, record.trial_id) for record in records
              if (value := _best_until(record, epoch, direction)) is not None]
    best, best_id = (max if direction == "maximize" else min)(scored)
    ratio = best / default if default and default > 0 and best >= 0 else None
    return {"default_trial": reference.trial_id, "epochs": epochs_trained(epoch), "epoch": epoch,
            "default": default, "best_trial": best_id, "best": best,
            "ratio": None if ratio is None else round(ratio, 3)}


def line(comparison: Mapping[str, Any], metric: str) -> str:
    """One line for the sweep's outcome: `default vs best after N epochs: ...`."""
    text = (f"default vs best after {comparison['epochs']} epochs: default configuration ({comparison['default_trial']}) "
            f"{metric}={comparison['default']:.4f}, best ({comparison['best_trial']}) {metric}={comparison['best']:.4f}")
    if comparison.get("ratio") is not None:
        text += f" ({comparison['ratio']:.1f}x)"
    return text
