"""`hpo plan`: what a sweep will do before it spends any compute.

The plan lists the searchable parameters and their ranges, the first batch of trials (their full specs are
written to `<sweep>/plan/`), the budget, the metric and its direction, and an estimated wall time. The
first batch is drawn from the sweep's seed and handed to the backend as static points (one value per
primitive draw, `hpo.space.static`), which it runs exactly first (Optuna enqueues them; Ray's searchers
evaluate them as `points_to_evaluate`).

The wall-time estimate (set-up + trials scheduled on the slots the machine has + promotion, from measured
times) is `estimate.py`'s: `--probe` always measures afresh; without it, an existing sweep's own history is
reused (and the plan says so); otherwise it is unknown.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpo.backends.optuna_factory import first_grid_points, grid_values
from hpo.driver.context import SweepContext, plain
from hpo.driver.estimate import (
    PROBE_DIR,
    TimingEstimate,
    WallEstimate,
    estimate_wall,
    format_duration,
    history_timing,
    probe_timing,
    trial_epochs,
)
from hpo.space import SearchSpace
from hpo.sweep.config import AlgorithmConfig
from skillkit.files import BEST_DIR, BEST_FILE, PLAN_FILE, atomic_write_json

__all__ = ["PROBE_DIR", "SweepPlan", "TimingEstimate", "expected_epochs", "first_batch", "format_duration", "make_plan",
           "write_plan"]


@dataclass
class SweepPlan:
    ctx: SweepContext
    batch: list[dict[str, Any]]
    batch_is_exact: bool
    points: list[dict[str, Any]]  # the batch's static points (what the backend is handed)
    expected_epochs_per_trial: float
    timing: TimingEstimate
    spec_files: list[Path] = field(default_factory=list)

    @property
    def concurrency(self) -> int:
        return max(1, min(self.ctx.config.resources.max_concurrent, self.ctx.config.algorithm.max_trials))

    @property
    def total_epochs(self) -> float:
        return self.expected_epochs_per_trial * self.ctx.config.algorithm.max_trials

    @property
    def wall(self) -> WallEstimate | None:
        return estimate_wall(self.ctx.config, self.ctx.max_epochs, self.timing, has_baseline=_has_baseline(self.ctx),
                             promotes=self.ctx.config.promotion_enabled)

    @property
    def estimated_wall_s(self) -> float | None:
        wall = self.wall
        return wall.total_s if wall else None

    def to_dict(self) -> dict[str, Any]:
        algorithm = self.ctx.config.algorithm
        return {
            "sweep": self.ctx.config.name, "metric": self.ctx.metric, "direction": self.ctx.direction,
            "backend": self.ctx.config.backend, "algorithm": algorithm.name, "sampler": algorithm.sampler,
            "scheduler": algorithm.scheduler, "max_trials": algorithm.max_trials, "max_epochs": self.ctx.max_epochs,
            "max_concurrent": self.ctx.config.resources.max_concurrent,
            "parameters": parameter_rows(self.ctx.space),
            "hot_parameters": [p.name for p in self.ctx.space.parameters if p.hot],
            "held_parameters": [h.to_dict() for h in self.ctx.held],
            "first_batch": self.batch, "first_batch_runs_as_shown": self.batch_is_exact,
            "first_batch_points": self.points if self.batch_is_exact else [],
            "spec_files": [str(p) for p in self.spec_files],
            "expected_epochs_per_trial": round(self.expected_epochs_per_trial, 3),
            "seconds_per_epoch": self.timing.seconds_per_epoch, "startup_s": self.timing.startup_s,
            "evaluate_s": self.timing.evaluate_s, "timing_source": self.timing.source,
            "estimated_wall_s": self.estimated_wall_s, "estimate": self.wall.to_dict() if self.wall else None,
            "notes": list(self.ctx.notes),
        }


def parameter_rows(space: SearchSpace) -> list[dict[str, Any]]:
    """One row per parameter: name, kind, range or choices (with its condition), scale, default, and whether
    PBT may change it mid-training (`pbt`: hot or cold, from the schema's `x_pbt` mark)."""
    rows = []
    for param in space.parameters:
        if param.choices is not None:
            domain = "{" + ", ".join(map(str, param.choices)) + "}"
        elif param.low is not None:
            domain = f"[{param.low}, {param.high}]"
        else:
            domain = param.why
        if param.condition:
            domain += f" ({param.condition})"
        rows.append({"name": param.name, "kind": param.kind, "domain": domain,
                     "scale": param.scale if param.kind in ("float", "int") else None, "default": plain(param.default),
                     "pbt": "hot" if param.hot else "cold"})
    return rows


def successive_halving_epochs(grace: float, rate: int, max_epochs: int) -> float:
    """Expected epochs per trial when a fraction 1/rate survives each rung (grace, grace*rate, ...)."""
    epochs, previous, survivors, rung = 0.0, 0.0, 1.0, float(grace)
    while rung < max_epochs:
        epochs += (rung - previous) * survivors
        previous, survivors, rung = rung, survivors / rate, rung * rate
    return epochs + (max_epochs - previous) * survivors


def expected_epochs(algorithm: AlgorithmConfig, max_epochs: int) -> float:
    scheduler, rate = algorithm.scheduler, algorithm.reduction_factor
    if scheduler == "asha":
        return successive_halving_epochs(algorithm.grace_period, rate, max_epochs)
    if scheduler in ("hyperband", "hyperband_es", "bohb"):  # hyperband_es: an upper bound (its curve stops vary)
        brackets = int(round(math.log(max_epochs) / math.log(rate))) + 1 if max_epochs > 1 else 1
        values = [successive_halving_epochs(max(1.0, max_epochs * rate ** -s), rate, max_epochs) for s in range(brackets)]
        return sum(values) / len(values)
    # none, median (an upper bound: the median rule's stops depend on the curves), pbt (all run fully)
    return float(max_epochs)


def first_batch(ctx: SweepContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """(params of the first trials, their static points, whether the backend will run exactly these)."""
    algorithm = ctx.config.algorithm
    size = max(1, min(algorithm.max_trials, ctx.config.resources.max_concurrent))
    if algorithm.sampler == "grid":
        grid = grid_values(ctx.space, algorithm.grid_points, algorithm.grid_values, epoch_budget=ctx.max_epochs)
        points = [plain(c) for c in first_grid_points(grid, ctx.config.seed, size)]
        return [plain(ctx.space.decode(p, epoch_budget=ctx.max_epochs)) for p in points], points, True
    rng = np.random.default_rng(ctx.config.seed)
    drawn = [ctx.space.sample_static(rng, epoch_budget=ctx.max_epochs) for _ in range(size)]
    if algorithm.sampler == "mfbo":  # it starts from the schema defaults (hpo.backends.mfbo_sampler)
        from hpo.backends.mfbo_sampler import default_point

        drawn[0] = default_point(ctx.space, ctx.config.seed, epoch_budget=ctx.max_epochs)
    return [plain(values) for values, _ in drawn], [plain(point) for _, point in drawn], True


def _has_baseline(ctx: SweepContext) -> bool:
    """Whether the driver will evaluate a baseline first (a pretrained start, not evaluated yet)."""
    from hpo.driver.baseline import BASELINE_FILE, baseline_checkpoint

    return (ctx.config.baseline_enabled and baseline_checkpoint(ctx) is not None
            and not (ctx.workspace.baseline_dir / BASELINE_FILE).is_file())


def _mean_epochs(ctx: SweepContext) -> float:
    """Epochs per trial as the estimate counts them (`estimate.trial_epochs`), so the plan says one number."""
    epochs = trial_epochs(ctx.config.algorithm, ctx.max_epochs, ctx.config.algorithm.max_trials)
    return sum(epochs) / len(epochs) if epochs else float(ctx.max_epochs)


def make_plan(ctx: SweepContext, *, probe: bool = False) -> SweepPlan:
    """The plan; `probe` measures the times afresh (see `estimate.py`), else this sweep's history is reused."""
    batch, points, exact = first_batch(ctx)
    if probe:
        timing = probe_timing(ctx)
    else:
        timing = history_timing(ctx.workspace.trials_dir, ctx.workspace.root / BEST_DIR / BEST_FILE) or TimingEstimate(
            None, None, "unknown: `--probe` times one epoch (and the final evaluation) first")
    return SweepPlan(ctx=ctx, batch=batch, batch_is_exact=exact, points=points,
                     expected_epochs_per_trial=_mean_epochs(ctx), timing=timing)


def write_plan(plan: SweepPlan) -> Path:
    """Write the first batch's specs and plan.json under `<sweep>/plan/`; returns plan.json's path."""
    folder = plan.ctx.workspace.plan_dir
    folder.mkdir(parents=True, exist_ok=True)
    plan.spec_files = []
    for index, params in enumerate(plan.batch):
        target = folder / f"trial_{index:04d}"
        spec = plan.ctx.trial_spec(params, target)
        path = folder / f"trial_{index:04d}.yaml"
        plan.spec_files.append(plan.ctx.write_trial_spec(spec, target).rename(path))
        target.rmdir()
    atomic_write_json(folder / PLAN_FILE, plan.to_dict())
    return folder / PLAN_FILE


def planned_points(plan_dir: Path) -> list[dict[str, Any]]:
    """The first batch's static points recorded in `<sweep>/plan/plan.json` when the backend runs them as
    shown: a sweep resumed before its first trial was asked (its driver died starting) runs the same batch."""
    try:
        recorded = json.loads((plan_dir / "plan.json").read_text())
    except (OSError, ValueError):
        return []
    return list(recorded.get("first_batch_points") or []) if recorded.get("first_batch_runs_as_shown") else []


def render_plan(plan: SweepPlan, console: Any) -> None:
    from rich.table import Table

    ctx, algorithm = plan.ctx, plan.ctx.config.algorithm
    params = Table(title=f"Search space ({len(ctx.space.parameters)} parameters)", title_justify="left")
    for column in ("parameter", "kind", "range / choices", "scale", "default", "PBT"):
        params.add_column(column)
    for row in parameter_rows(ctx.space):
        params.add_row(row["name"], str(row["kind"]), row["domain"], str(row["scale"] or ""), str(row["default"]),
                       row["pbt"])
    console.print(params)
    if ctx.held:
        held = Table(title=f"Held at their base-spec value ({len(ctx.held)}: the algorithm cannot search them)",
                     title_justify="left")
        for column in ("parameter", "value", "why"):
            held.add_column(column, overflow="fold")
        for item in ctx.held:
            held.add_row(item.name, _short(item.value), item.reason)
        console.print(held)
    batch = Table(title=f"First batch ({len(plan.batch)} trials{'' if plan.batch_is_exact else ', preview'})",
                  title_justify="left")
    batch.add_column("#")
    names = [p.name for p in ctx.space.parameters]
    for name in names:
        batch.add_column(name.split(".")[-1], overflow="fold")
    for index, values in enumerate(plan.batch):
        batch.add_row(str(index), *[_short(values.get(name)) for name in names])
    console.print(batch)
    scheduler = {"none": "no early stopping", "asha": "successive halving (ASHA)", "hyperband": "HyperBand",
                 "hyperband_es": "HyperBand with learning-curve early stopping", "median": "median stopping",
                 "bohb": "BOHB", "pbt": "population-based training"}[algorithm.scheduler]
    console.print(
        f"[bold]Budget[/]: {algorithm.max_trials} trials x up to {ctx.max_epochs} epochs, {plan.concurrency} at a time; "
        f"sampler {algorithm.sampler}, {scheduler} on backend {ctx.config.backend}; expected "
        f"{plan.expected_epochs_per_trial:.1f} epochs per trial ({plan.total_epochs:.0f} in all)."
    )
    console.print(f"[bold]Metric[/]: {ctx.metric} ({ctx.direction}); workspace {ctx.workspace.root}")
    wall = plan.wall
    if wall is None:
        console.print(f"[bold]Estimated wall time[/]: unknown ({plan.timing.source})")
    else:
        parts = [f"trials {format_duration(wall.trials_s)} ({sum(wall.epochs)} epochs in {len(wall.epochs)} trials, "
                 f"{wall.parallel} at a time)"]
        if wall.setup_s:
            parts.insert(0, f"set-up {format_duration(wall.setup_s)}")
        if wall.promotion_s:
            parts.append(f"promotion {format_duration(wall.promotion_s)}")
        console.print(f"[bold]Estimated wall time[/]: {format_duration(wall.total_s)} = {' + '.join(parts)}")
        console.print(f"  from {plan.timing.source}")
    if plan.spec_files:
        console.print(f"First-batch specs: {plan.spec_files[0].parent}/")
    from hpo.driver.compatibility import held_note

    shown = {held_note(item) for item in ctx.held}  # already in the table above
    for note in ctx.notes:
        if note not in shown:
            console.print(f"[yellow]note[/]: {note}")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= 24 else text[:21] + "..."
