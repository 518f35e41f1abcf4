"""`hyperband_es`: Hyperband plus learning-curve early stopping, on both backends.

Hyperband stops trials only at its rungs (1, 3, 9... epochs at reduction factor 3), by rank. A trial that
survives a rung then trains to the next one even when its curve has visibly flattened below what another
trial already reached. This rule looks at the curve itself, after every validation:

1. With at least `min_points` validations (4 or more: a three-parameter curve passes through any three
   points), fit the power law y(t) = c + a·t^b (t = epochs trained; scipy's `curve_fit`) to them.
2. If the fit explains the curve (R² >= `threshold`), extrapolate it to the epoch budget: the predicted final
   value.
3. Stop the trial when that prediction is worse than the incumbent by more than `margin`·|incumbent|. The
   incumbent is the best full-budget result so far (the best validation of a trial that trained the whole
   budget, what promotion would pick). Before any trial has completed there is no incumbent and only
   Hyperband stops trials. (Comparing with other trials' values at any epoch, as TAO's brain does, was
   tried first: on noisy curves the best of many noisy values is a bar no honest prediction clears, and it
   stopped the eventual winners.)

A curve that does not fit (a noisy or still-rising one), or a prediction within the margin, keeps the trial;
Hyperband's own rungs still apply. TAO AutoML's `hyperband_es` brain follows the same idea (power-law
extrapolation gated by R², with a 5 % margin); this is our own.

Backend optuna: `HyperbandESPruner` (Optuna's `HyperbandPruner`, asked after the curve rule). Backend ray:
`HyperBandESScheduler` (Ray's synchronous `HyperBandScheduler`: trials paused at a rung resume from their
own checkpoint), which removes a stopped trial from its bracket so the bracket goes on without it. Each stop
the rule makes is recorded: the trial's `early_stop` user attribute on Optuna (epoch, prediction,
incumbent, R²), `HyperBandESScheduler.decisions` on Ray.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

EARLY_STOP_ATTR = "early_stop"


@dataclass(frozen=True)
class CurveVerdict:
    stop: bool
    predicted: float | None
    r2: float | None
    incumbent: float | None


@dataclass(frozen=True)
class CurveRule:
    """The stop rule of the module docstring; `maximize` is the metric's direction."""

    max_epochs: int
    min_points: int = 4
    threshold: float = 0.8
    margin: float = 0.05

    def __post_init__(self) -> None:
        if self.min_points < 4:
            raise ValueError(f"min_points must be >= 4 (a 3-parameter curve fits any 3 points), got {self.min_points}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold (an R^2) must be in [0, 1], got {self.threshold}")
        if self.margin < 0.0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")

    def predict(self, epochs: Sequence[int], values: Sequence[float]) -> tuple[float, float] | None:
        """(value extrapolated to max_epochs, R² of the fit), or None when it cannot be fitted."""
        from scipy.optimize import curve_fit

        t = np.asarray(epochs, dtype=float)
        y = np.asarray(values, dtype=float)
        if len(t) < self.min_points or not np.all(np.isfinite(y)) or len(set(t.tolist())) < len(t):
            return None
        spread = float(np.ptp(y))
        if spread == 0.0:
            return float(y[-1]), 1.0  # flat: it will stay where it is
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                params, _ = curve_fit(_power_law, t, y, p0=(y[-1], y[0] - y[-1], -0.5), maxfev=2000)
        except (RuntimeError, ValueError, TypeError):
            return None
        fitted = _power_law(t, *params)
        residual = float(np.sum((y - fitted) ** 2))
        total = float(np.sum((y - y.mean()) ** 2))
        r2 = 1.0 - residual / total if total > 0 else 0.0
        predicted = float(_power_law(float(self.max_epochs), *params))
        if not math.isfinite(predicted):
            return None
        return predicted, r2

    def verdict(self, epochs: Sequence[int], values: Sequence[float], incumbent: float | None, *,
                maximize: bool) -> CurveVerdict:
        if incumbent is None or not epochs or max(epochs) >= self.max_epochs:
            return CurveVerdict(False, None, None, incumbent)
        fit = self.predict(epochs, values)
        if fit is None:
            return CurveVerdict(False, None, None, incumbent)
        predicted, r2 = fit
        if r2 < self.threshold:
            return CurveVerdict(False, predicted, r2, incumbent)
        slack = self.margin * abs(incumbent)
        worse = predicted < incumbent - slack if maximize else predicted > incumbent + slack
        return CurveVerdict(bool(worse), predicted, r2, incumbent)


def _power_law(t: Any, c: float, a: float, b: float) -> Any:
    return c + a * np.power(t, b)


def best_of(values: Mapping[Any, float] | Sequence[float], *, maximize: bool) -> float | None:
    finite = [float(v) for v in (values.values() if isinstance(values, Mapping) else values)
              if v is not None and math.isfinite(float(v))]
    if not finite:
        return None
    return max(finite) if maximize else min(finite)


# ------------------------------------------------------------------------------------------ backend optuna


class HyperbandESPruner(optuna.pruners.HyperbandPruner):
    """Optuna's Hyperband pruner with the curve rule asked first (module docstring).

    A subclass, not a wrapper, so Optuna still shows samplers only the trials of the same bracket, as with
    plain `hyperband`. Steps are epochs trained (what the engine reports).
    """

    def __init__(self, rule: CurveRule, *, min_resource: int, max_resource: int, reduction_factor: int) -> None:
        super().__init__(min_resource=min_resource, max_resource=max_resource, reduction_factor=reduction_factor)
        self.rule = rule

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        values = {step: v for step, v in trial.intermediate_values.items() if v is not None}
        if len(values) >= self.rule.min_points:
            incumbent = self.incumbent(study, trial, maximize=maximize)
            steps = sorted(values)
            verdict = self.rule.verdict(steps, [values[s] for s in steps], incumbent, maximize=maximize)
            if verdict.stop:
                study._storage.set_trial_user_attr(trial._trial_id, EARLY_STOP_ATTR, {
                    "epochs_trained": steps[-1], "predicted": verdict.predicted, "incumbent": verdict.incumbent,
                    "r2": verdict.r2})
                return True
        return super().prune(study, trial)

    @staticmethod
    def incumbent(study: optuna.Study, trial: FrozenTrial, *, maximize: bool) -> float | None:
        """The best full-budget result: the best value of the complete trials (each one's best validation)."""
        return best_of([t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                        if t.value is not None], maximize=maximize)


# --------------------------------------------------------------------------------------------- backend ray


def hyperband_es_scheduler(rule: CurveRule, *, max_t: int, reduction_factor: int) -> Any:
    """Ray's synchronous HyperBand with the curve rule (module docstring); imported lazily (Ray is optional)."""
    from ray.tune.schedulers import HyperBandScheduler, TrialScheduler

    class HyperBandESScheduler(HyperBandScheduler):
        """See `hyperband_es_scheduler`. Time attribute: epochs trained."""

        def __init__(self) -> None:
            super().__init__(time_attr="epochs_trained", max_t=max_t, reduction_factor=reduction_factor)
            self.rule = rule
            self.curves: dict[str, dict[int, float]] = {}
            self.complete: set[str] = set()  # trials that trained the whole budget: their results count
            self.decisions: list[dict[str, Any]] = []

        def _record(self, trial: Any, result: dict | None) -> dict[int, float]:
            curve = self.curves.setdefault(trial.trial_id, {})
            trained, value = (result or {}).get("epochs_trained"), (result or {}).get(self._metric)
            if isinstance(trained, int) and isinstance(value, (int, float)) and math.isfinite(value):
                curve[trained] = float(value)
            return curve

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            maximize = self._metric_op > 0
            curve = self._record(trial, result)
            if len(curve) >= self.rule.min_points and max(curve) == result.get("epochs_trained"):
                incumbent = best_of([v for tid, c in self.curves.items() if tid in self.complete
                                     for v in c.values()], maximize=maximize)
                steps = sorted(curve)
                verdict = self.rule.verdict(steps, [curve[s] for s in steps], incumbent, maximize=maximize)
                if verdict.stop:
                    return self._stop_early(tune_controller, trial, result, verdict, steps[-1])
            return super().on_trial_result(tune_controller, trial, result)

        def _stop_early(self, tune_controller: Any, trial: Any, result: dict, verdict: CurveVerdict,
                        trained: int) -> str:
            self.decisions.append({"trial_id": trial.trial_id, "epochs_trained": trained,
                                   "predicted": verdict.predicted, "incumbent": verdict.incumbent, "r2": verdict.r2})
            bracket, _ = self._trial_info[trial]
            bracket.update_trial_stats(trial, result)
            bracket.cleanup_trial(trial)
            # The bracket may have been waiting for this trial only: halve it now (the others are paused).
            if bracket.current_trials() and bracket.cur_iter_done():
                self._process_bracket(tune_controller, bracket)
            return TrialScheduler.STOP

        def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
            # A result with done=True (the budget's last epoch) comes here, not through on_trial_result.
            self._record(trial, result)
            super().on_trial_complete(tune_controller, trial, result)

        def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
            curve = self.curves.get(trial.trial_id, {})
            if curve and max(curve) >= max_t:
                self.complete.add(trial.trial_id)
            super().on_trial_remove(tune_controller, trial)

    return HyperBandESScheduler()
