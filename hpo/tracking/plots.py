"""Sweep plots from summary.json, each as PNG (matplotlib) and HTML (plotly), written to `<sweep>/plots/`.

- `optimization_history`: every trial that reported a validation, by trial number: completed trials as
  filled dots at their best validated value, pruned (and paused) trials as hollow markers at the best value
  they reported before the scheduler stopped them, and the "best so far" line: the value promotion would
  pick after each trial (the one rule in `hpo.trials.record.best_trial`: completed trials only).
- `learning_curves`: the metric per epoch of every trial; where the scheduler pruned a trial its last
  point is marked with an x.
- `parallel_coordinate` and `param_importances` (Optuna's, fANOVA importances): they compare trials, so
  they use values measured at one budget: the completed trials' best values when at least
  `MIN_COMPARED` completed trials differ in their parameters; else every trial's value at the last epoch
  that many trials reached (titled so, e.g. "mIoU at epoch 1, reached by 5 trials") -- never a pruned
  trial's short-budget value beside a full run's.
A plot that cannot be drawn is skipped with a one-line reason (`PlotSet.skipped`); `plots.json` in the folder
lists what was drawn, on which values, and why anything was not, for the console and `hpo status`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hpo import selection
from hpo.selection import entry_value
from hpo.trials.record import COMPLETED, PAUSED, PRUNED, TrialRecord, best_trial
from skillkit.checkpoints import epochs_trained

logger = logging.getLogger(__name__)

PLOTS = ("optimization_history", "learning_curves", "parallel_coordinate", "param_importances")
PLOTS_FILE = "plots.json"
MIN_COMPARED = 3  # trials needed to compare parameters (parallel coordinates, importances)
_STATE = {"COMPLETED": "COMPLETE", "PRUNED": "PRUNED", "PAUSED": "PRUNED", "FAILED": "FAIL"}
_STOPPED = (PRUNED, PAUSED)


@dataclasses.dataclass(frozen=True)
class PlotSet:
    """Files written, plots skipped (name -> one-line reason) and what compared plots were computed on."""

    files: tuple[Path, ...]
    skipped: Mapping[str, str]
    basis: str | None = None

    def to_dict(self, out_dir: Path) -> dict[str, Any]:
        return {"folder": str(out_dir), "drawn": sorted({p.stem for p in self.files}, key=PLOTS.index),
                "skipped": dict(self.skipped), "compared_on": self.basis}


@dataclasses.dataclass(frozen=True)
class TrialPoints:
    """What the plots draw of one trial: its number, state, params and validated curve [(epoch, value)]."""

    number: int
    trial_id: str
    state: str
    params: Mapping[str, Any]
    curve: tuple[tuple[int, float], ...]

    def best(self, direction: str) -> float | None:
        return selection.best_of((value for _, value in self.curve), lambda value: value, direction)

    def at(self, epoch: int) -> float | None:
        return next((value for e, value in self.curve if e == epoch), None)


def trial_points(summary: Mapping[str, Any]) -> list[TrialPoints]:
    metric = str(summary.get("metric") or "mIoU")
    points = []
    for index, trial in enumerate(summary.get("trials") or []):
        curve = sorted({int(entry["epoch"]): value for entry in trial.get("history") or []
                        if (value := entry_value(entry, metric)) is not None}.items())
        number = trial.get("number")
        points.append(TrialPoints(number=int(number) if isinstance(number, int) else index,
                                  trial_id=str(trial.get("trial_id")), state=str(trial.get("state")),
                                  params=dict(trial.get("params") or {}), curve=tuple(curve)))
    return sorted(points, key=lambda p: p.number)


def best_so_far(summary: Mapping[str, Any]) -> list[tuple[int, float | None]]:
    """(trial number, what promotion would pick among the trials up to it) for every trial, in order."""
    metric = str(summary.get("metric") or "mIoU")
    direction = str(summary.get("direction") or "maximize")
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"summary direction must be maximize or minimize, got {direction!r}")
    records = sorted((TrialRecord.from_dict(t, metric=metric, direction=direction) for t in summary.get("trials") or []),
                     key=lambda r: r.number)
    result, seen = [], []
    for record in records:
        seen.append(record)
        leader = best_trial(seen, direction)
        result.append((record.number, leader.best_value() if leader else None))
    return result


# -- comparing parameters at one budget ---------------------------------------------------------------------

def compared_trials(points: Sequence[TrialPoints], metric: str, direction: str) -> tuple[list[tuple[TrialPoints, float]], str | None, str | None]:
    """(trials with the value to compare them on, what that value is, why none can be compared)."""
    completed = [(p, value) for p in points if p.state == COMPLETED and (value := p.best(direction)) is not None]
    if len(completed) >= MIN_COMPARED and _params_differ([p for p, _ in completed]):
        return completed, f"best {metric} of the {len(completed)} completed trials", None
    reached: dict[int, list[tuple[TrialPoints, float]]] = {}
    for point in points:
        for epoch, value in point.curve:
            reached.setdefault(epoch, []).append((point, value))
    for epoch in sorted(reached, reverse=True):
        if len(reached[epoch]) >= MIN_COMPARED and _params_differ([p for p, _ in reached[epoch]]):
            return reached[epoch], f"{metric} at epoch {epoch}, the last epoch {len(reached[epoch])} trials reached", None
    return [], None, (f"needs {MIN_COMPARED} trials with different parameters validated at one budget; this sweep has "
                      f"{len(completed)} completed and no epoch {MIN_COMPARED} trials reached")


def _params_differ(points: Sequence[TrialPoints]) -> bool:
    names = {name for p in points for name in p.params}
    return any(len({json.dumps(p.params.get(name), sort_keys=True, default=str) for p in points}) > 1 for name in names)


def study_from_summary(summary: Mapping[str, Any], *, space: Mapping[str, Any] | None = None,
                       values: Mapping[str, float] | None = None) -> Any:
    """An in-memory Optuna study of the sweep's trials (params, value, learning curve, state), for Optuna's
    plots. With `values` (trial id -> value), only those trials, each COMPLETE with that value (the values
    of one budget, see `compared_trials`)."""
    import optuna

    metric = str(summary.get("metric") or "mIoU")
    direction = str(summary.get("direction") or "maximize")
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"summary direction must be maximize or minimize, got {direction!r}")
    trials = [t for t in summary.get("trials") or [] if str(t.get("state")) in _STATE]
    if values is not None:
        trials = [t for t in trials if str(t.get("trial_id")) in values]
    distributions = _distributions(trials, space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if direction == "minimize" else "maximize",
                                study_name=str(summary.get("sweep") or "sweep"))
    for trial in trials:
        # Steps are epochs trained, as the engine reports them to Optuna (history epochs are TAO's 0-based index).
        curve = {epochs_trained(int(entry["epoch"])): value for entry in trial.get("history") or []
                 if (value := entry_value(entry, metric)) is not None}
        best = (trial.get("best") or {}).get("metric")
        if best is None and curve:
            entry = selection.best_epoch(trial.get("history") or [], metric, direction)
            best = selection.entry_value(entry, metric) if entry else None
        state = _STATE[str(trial["state"])]
        if values is not None:
            state, best = "COMPLETE", values[str(trial.get("trial_id"))]
        final = float(best) if state == "COMPLETE" and best is not None else None
        if state == "COMPLETE" and (final is None or not math.isfinite(final)):
            state, final = "FAIL", None
        params = {name: _encode(value) for name, value in (trial.get("params") or {}).items() if name in distributions}
        params = {name: value for name, value in params.items() if distributions[name]._contains(
            distributions[name].to_internal_repr(value))}
        study.add_trial(optuna.trial.create_trial(
            state=getattr(optuna.trial.TrialState, state),
            value=final,
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


# -- drawing -------------------------------------------------------------------------------------------------

_COMPLETED_COLOR, _STOPPED_COLOR, _BEST_COLOR = "#1f77b4", "#ff7f0e", "#d62728"


def _history(points: Sequence[TrialPoints], summary: Mapping[str, Any], metric: str, direction: str) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from matplotlib.ticker import MaxNLocator

    completed = [(p.number, p.best(direction), p.trial_id) for p in points if p.state == COMPLETED and p.curve]
    stopped = [(p.number, p.best(direction), f"{p.trial_id} ({p.state.lower()} at epoch {p.curve[-1][0]})")
               for p in points if p.state in _STOPPED and p.curve]
    leader = [(number, value) for number, value in best_so_far(summary) if value is not None]
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[n for n, _, _ in completed], y=[v for _, v, _ in completed], mode="markers",
                                name="completed (best epoch)", text=[t for _, _, t in completed],
                                marker={"color": _COMPLETED_COLOR, "size": 10}))
    figure.add_trace(go.Scatter(x=[n for n, _, _ in stopped], y=[v for _, v, _ in stopped], mode="markers",
                                name="pruned (best before it was stopped)", text=[t for _, _, t in stopped],
                                marker={"color": _STOPPED_COLOR, "size": 10, "symbol": "circle-open",
                                        "line": {"width": 2}}))
    if leader:
        figure.add_trace(go.Scatter(x=[n for n, _ in leader], y=[v for _, v in leader], mode="lines",
                                    line={"shape": "hv", "color": _BEST_COLOR}, name="best so far (what promotion picks)"))
    figure.update_layout(title=f"Optimization history ({metric}, {direction})", xaxis_title="trial", yaxis_title=metric)
    axes = plt.figure(figsize=(9, 6)).gca()
    axes.scatter([n for n, _, _ in completed], [v for _, v, _ in completed], color=_COMPLETED_COLOR, s=50,
                 label="completed (best epoch)", zorder=3)
    axes.scatter([n for n, _, _ in stopped], [v for _, v, _ in stopped], facecolors="none", edgecolors=_STOPPED_COLOR,
                 linewidths=1.5, s=50, label="pruned (best before it was stopped)", zorder=3)
    if leader:
        axes.step([n for n, _ in leader], [v for _, v in leader], where="post", color=_BEST_COLOR,
                  label="best so far (what promotion picks)")
    axes.set(title=f"Optimization history ({metric}, {direction})", xlabel="trial", ylabel=metric)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
    return figure, axes.figure


def _curves(points: Sequence[TrialPoints], metric: str) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from matplotlib.ticker import MaxNLocator

    figure = go.Figure()
    axes = plt.figure(figsize=(9, 6)).gca()
    marked = False
    for point in points:
        if not point.curve:
            continue
        epochs, values = [e for e, _ in point.curve], [v for _, v in point.curve]
        label = f"{point.trial_id} ({point.state.lower()})"
        figure.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=label))
        (line,) = axes.plot(epochs, values, marker="o", markersize=3, label=label)
        if point.state in _STOPPED:
            figure.add_trace(go.Scatter(x=[epochs[-1]], y=[values[-1]], mode="markers", showlegend=not marked,
                                        name="pruned here", marker={"symbol": "x", "size": 12, "color": "black"}))
            axes.scatter([epochs[-1]], [values[-1]], marker="x", s=80, color="black", zorder=4,
                         label=None if marked else "pruned here")
            marked = True
    title = f"Learning curves ({metric} per epoch; x: where the scheduler pruned a trial)"
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title=metric)
    axes.set(title=title, xlabel="epoch", ylabel=metric)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(fontsize="small", ncol=2)
    return figure, axes.figure


def make_plots(summary: Mapping[str, Any], out_dir: Path, *, space: Mapping[str, Any] | None = None) -> PlotSet:
    """Write `<plot>.png` and `<plot>.html` for every plot that can be drawn, and `plots.json`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import optuna.visualization as ov
    import optuna.visualization.matplotlib as ovm

    out_dir.mkdir(parents=True, exist_ok=True)
    metric = str(summary.get("metric") or "mIoU")
    direction = str(summary.get("direction") or "maximize")
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"summary direction must be maximize or minimize, got {direction!r}")
    points = trial_points(summary)
    compared, basis, why_not = compared_trials(points, metric, direction)
    validated = any(p.curve for p in points)
    reasons = {
        "optimization_history": None if validated else "no trial reported a validation",
        "learning_curves": None if validated else "no trial reported a validation",
        "parallel_coordinate": why_not,
        "param_importances": why_not,
    }
    target = basis or metric
    draw: dict[str, Callable[[], tuple[Any, Any]]] = {
        "optimization_history": lambda: _history(points, summary, metric, direction),
        "learning_curves": lambda: _curves(points, metric),
    }
    if compared:  # else the two comparing plots are skipped with `why_not`
        study = study_from_summary(summary, space=space, values={p.trial_id: value for p, value in compared})
        importance = _importance_evaluator()
        draw["parallel_coordinate"] = lambda: (ov.plot_parallel_coordinate(study, target_name=target),
                                               _figure_of(ovm.plot_parallel_coordinate(study, target_name=target)))
        draw["param_importances"] = lambda: (
            ov.plot_param_importances(study, evaluator=importance, target_name=target),
            _figure_of(ovm.plot_param_importances(study, evaluator=importance, target_name=target)))
    files: list[Path] = []
    skipped: dict[str, str] = {}
    for name in PLOTS:
        reason = reasons[name] or (None if name in draw else "no trials to compare")
        if reason:
            skipped[name] = reason
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna's matplotlib backend is flagged experimental
                html_figure, png_figure = draw[name]()  # compared plots name their basis in the target
                html = out_dir / f"{name}.html"
                html_figure.write_html(str(html), include_plotlyjs=True, full_html=True)
                png_figure.set_size_inches(9, 6)
                png = out_dir / f"{name}.png"
                png_figure.savefig(png, dpi=100, bbox_inches="tight")
                plt.close(png_figure)
            files.extend([png, html])
        except Exception as error:  # noqa: BLE001 - a plot that cannot be drawn is reported, not fatal
            skipped[name] = f"{type(error).__name__}: {error}".splitlines()[0]
            logger.warning("plot %s skipped: %s", name, error)
    plots = PlotSet(tuple(files), skipped, basis)
    (out_dir / PLOTS_FILE).write_text(json.dumps(plots.to_dict(out_dir), indent=2))
    return plots


def read_plot_set(out_dir: Path) -> dict[str, Any] | None:
    """What `make_plots` recorded in `out_dir` (None when no plots were made there)."""
    try:
        return json.loads((out_dir / PLOTS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _figure_of(axes: Any) -> Any:
    return axes.figure if hasattr(axes, "figure") else axes.flat[0].figure


def _importance_evaluator() -> Any:
    """fANOVA when scikit-learn is importable (optuna's default), else PED-ANOVA (no extra dependency)."""
    import optuna.importance as importance

    try:
        import sklearn  # noqa: F401

        return importance.FanovaImportanceEvaluator(seed=0)
    except ImportError:
        return importance.PedAnovaImportanceEvaluator()
