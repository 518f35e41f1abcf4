"""Sweep plots from summary.json: optimization history, parallel coordinates, parameter importances and
every trial's learning curve, each as PNG (matplotlib) and HTML (plotly).

Optuna's visualization module draws all four from an Optuna study, so a study is rebuilt in memory from the
sweep's records whichever backend ran it (a Ray sweep has no study at all): one frozen trial per sweep trial,
its params, its best validated metric as the value, and its per-epoch metric as intermediate values (the
learning curve). PNGs come from `optuna.visualization.matplotlib` because kaleido (plotly's image export)
is not installed everywhere. A plot that cannot be drawn (importances need two finished trials that differ)
is skipped with its reason, never faked.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any, Mapping

from hpo import selection
from hpo.selection import entry_value
from skillkit.checkpoints import epochs_trained

logger = logging.getLogger(__name__)

PLOTS = ("optimization_history", "parallel_coordinate", "param_importances", "learning_curves")
_STATE = {"COMPLETED": "COMPLETE", "PRUNED": "PRUNED", "PAUSED": "PRUNED", "FAILED": "FAIL"}


@dataclasses.dataclass(frozen=True)
class PlotSet:
    """Files written and plots skipped (name -> reason)."""

    files: tuple[Path, ...]
    skipped: Mapping[str, str]


def study_from_summary(summary: Mapping[str, Any], *, space: Mapping[str, Any] | None = None) -> Any:
    """An in-memory Optuna study holding the sweep's trials (params, value, learning curve, state)."""
    import optuna

    metric = str(summary.get("metric") or "mIoU")
    direction = str(summary.get("direction") or "maximize")
    trials = [t for t in summary.get("trials") or [] if str(t.get("state")) in _STATE]
    distributions = _distributions(trials, space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction, study_name=str(summary.get("sweep") or "sweep"))
    for trial in trials:
        # Steps are epochs trained, as the engine reports them to Optuna (history epochs are TAO's 0-based index).
        curve = {epochs_trained(int(entry["epoch"])): value for entry in trial.get("history") or []
                 if (value := entry_value(entry, metric)) is not None}
        best = (trial.get("best") or {}).get("metric")
        if best is None and curve:
            entry = selection.best_epoch(trial.get("history") or [], metric, direction)
            best = selection.entry_value(entry, metric) if entry else None
        state = _STATE[str(trial["state"])]
        if state == "COMPLETE" and (best is None or not math.isfinite(float(best))):
            state = "FAIL"
        params = {name: _encode(value) for name, value in (trial.get("params") or {}).items() if name in distributions}
        params = {name: value for name, value in params.items() if distributions[name]._contains(
            distributions[name].to_internal_repr(value))}
        study.add_trial(optuna.trial.create_trial(
            state=getattr(optuna.trial.TrialState, state),
            value=float(best) if state == "COMPLETE" else None,
            params=params,
            distributions={name: distributions[name] for name in params},
            intermediate_values=curve if state != "FAIL" else {},
            user_attrs={"trial_id": str(trial.get("trial_id"))},
        ))
    return study


def _encode(value: Any) -> Any:
    """Optuna params must be scalars: lists/dicts become their JSON text (shown as a categorical)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def _distributions(trials: list[Mapping[str, Any]], space: Mapping[str, Any] | None) -> dict[str, Any]:
    """A distribution per parameter: from the compiled space when it offers one, else from the values seen."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    declared = _space_distributions(space)
    values: dict[str, list[Any]] = {}
    for trial in trials:
        for name, value in (trial.get("params") or {}).items():
            values.setdefault(name, []).append(_encode(value))
    result: dict[str, Any] = {}
    for name, seen in values.items():
        distribution = declared.get(name)
        if distribution is not None and all(distribution._contains(distribution.to_internal_repr(v)) for v in seen):
            result[name] = distribution
            continue
        numbers = [v for v in seen if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) == len(seen) and numbers:
            low, high = min(numbers), max(numbers)
            if low == high:
                result[name] = CategoricalDistribution([low])
            elif all(isinstance(v, int) for v in numbers):
                result[name] = IntDistribution(int(low), int(high))
            else:
                log = low > 0 and high / low >= 100.0
                result[name] = FloatDistribution(float(low), float(high), log=log)
        else:
            unique = sorted({json.dumps(v) for v in seen})
            result[name] = CategoricalDistribution([json.loads(text) for text in unique])
    return result


def _space_distributions(space: Mapping[str, Any] | None) -> dict[str, Any]:
    if not space:
        return {}
    try:
        from hpo.space import SearchSpace

        return dict(SearchSpace.from_dict(dict(space)).optuna_distributions())
    except Exception:  # noqa: BLE001 - conditional spaces (or an older space file) fall back to inference
        return {}


def make_plots(summary: Mapping[str, Any], out_dir: Path, *, space: Mapping[str, Any] | None = None) -> PlotSet:
    """Write `<plot>.png` and `<plot>.html` for every plot that can be drawn."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import optuna.visualization as ov
    import optuna.visualization.matplotlib as ovm

    out_dir.mkdir(parents=True, exist_ok=True)
    study = study_from_summary(summary, space=space)
    metric = str(summary.get("metric") or "mIoU")
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    curves = [t for t in trials if t.intermediate_values]
    varying = {name for name in {n for t in complete for n in t.params}
               if len({json.dumps(t.params.get(name), default=str) for t in complete}) > 1}
    reasons = {
        "optimization_history": None if complete else "no completed trial",
        "parallel_coordinate": None if complete and varying else "needs completed trials whose params differ",
        "param_importances": None if len(complete) >= 2 and varying else "needs two completed trials whose params differ",
        "learning_curves": None if curves else "no trial reported a validation",
    }
    importance = _importance_evaluator()
    draw = {
        "optimization_history": (lambda: ov.plot_optimization_history(study, target_name=metric),
                                 lambda: ovm.plot_optimization_history(study, target_name=metric)),
        "parallel_coordinate": (lambda: ov.plot_parallel_coordinate(study, target_name=metric),
                                lambda: ovm.plot_parallel_coordinate(study, target_name=metric)),
        "param_importances": (lambda: ov.plot_param_importances(study, evaluator=importance, target_name=metric),
                              lambda: ovm.plot_param_importances(study, evaluator=importance, target_name=metric)),
        "learning_curves": (lambda: ov.plot_intermediate_values(study), lambda: ovm.plot_intermediate_values(study)),
    }
    files: list[Path] = []
    skipped: dict[str, str] = {}
    for name in PLOTS:
        if reasons[name]:
            skipped[name] = reasons[name]  # type: ignore[assignment]
            continue
        html_figure, png_axes = draw[name]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna's matplotlib backend is flagged experimental
                figure = html_figure()
                if name == "learning_curves":
                    figure.update_layout(title=f"Learning curves ({metric} per epoch)", xaxis_title="epochs trained",
                                         yaxis_title=metric)
                html = out_dir / f"{name}.html"
                figure.write_html(str(html), include_plotlyjs=True, full_html=True)
                axes = png_axes()
                canvas = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
                if name == "learning_curves":
                    axes.set_title(f"Learning curves ({metric} per epoch)")
                    axes.set_xlabel("epochs trained")
                    axes.set_ylabel(metric)
                canvas.set_size_inches(9, 6)
                png = out_dir / f"{name}.png"
                canvas.savefig(png, dpi=100, bbox_inches="tight")
                plt.close(canvas)
            files.extend([png, html])
        except Exception as error:  # noqa: BLE001 - a plot that optuna refuses is reported, not fatal
            skipped[name] = f"{type(error).__name__}: {error}"
            logger.warning("plot %s skipped: %s", name, error)
    return PlotSet(tuple(files), skipped)


def _importance_evaluator() -> Any:
    """fANOVA when scikit-learn is importable (optuna's default), else PED-ANOVA (no extra dependency)."""
    import optuna.importance as importance

    try:
        import sklearn  # noqa: F401

        return importance.FanovaImportanceEvaluator(seed=0)
    except ImportError:
        return importance.PedAnovaImportanceEvaluator()
