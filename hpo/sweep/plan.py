"""`hpo plan`: what a sweep will do before it spends any compute.

The plan lists the searchable parameters and their ranges, the first batch of trials (their full specs are
written to `<sweep>/plan/`), the budget, the metric and its direction, and an estimated wall time. The
first batch is drawn from the sweep's seed and handed to the backend, which runs exactly those
configurations first (Optuna enqueues them; Ray's searchers evaluate them as `points_to_evaluate`).

The wall-time estimate multiplies the expected number of trained epochs (the scheduler's expected
survival, e.g. successive halving keeps 1/reduction_factor per rung) by seconds per epoch, adds a per-trial
start-up cost and divides by the concurrency. Seconds per epoch come from this sweep's own trial history
when it has one, else from a timing probe (`--probe`: one epoch of the base spec), else are unknown.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpo.backends.optuna_factory import combinations, grid_values
from hpo.space import SearchSpace
from hpo.sweep.config import AlgorithmConfig
from hpo.sweep.context import SweepContext, plain
from skillkit.files import atomic_write_json
from hpo.trials.runner import TrainerProcess, TrialLaunch
from skillkit.states import RunStatus
from skillkit.status import STATUS_FILE, read_lines

PROBE_DIR = "probe"


@dataclass(frozen=True)
class TimingEstimate:
    seconds_per_epoch: float | None
    startup_s: float | None
    source: str


@dataclass
class SweepPlan:
    ctx: SweepContext
    batch: list[dict[str, Any]]
    batch_is_exact: bool
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
    def estimated_wall_s(self) -> float | None:
        if self.timing.seconds_per_epoch is None:
            return None
        startup = self.timing.startup_s or 0.0
        trials = self.ctx.config.algorithm.max_trials
        return (self.total_epochs * self.timing.seconds_per_epoch + trials * startup) / self.concurrency

    def to_dict(self) -> dict[str, Any]:
        algorithm = self.ctx.config.algorithm
        return {
            "sweep": self.ctx.config.name, "metric": self.ctx.metric, "direction": self.ctx.direction,
            "backend": self.ctx.config.backend, "algorithm": algorithm.name, "sampler": algorithm.sampler,
            "scheduler": algorithm.scheduler, "max_trials": algorithm.max_trials, "max_epochs": self.ctx.max_epochs,
            "max_concurrent": self.ctx.config.resources.max_concurrent,
            "parameters": parameter_rows(self.ctx.space),
            "first_batch": self.batch, "first_batch_runs_as_shown": self.batch_is_exact,
            "spec_files": [str(p) for p in self.spec_files],
            "expected_epochs_per_trial": round(self.expected_epochs_per_trial, 3),
            "seconds_per_epoch": self.timing.seconds_per_epoch, "startup_s": self.timing.startup_s,
            "timing_source": self.timing.source, "estimated_wall_s": self.estimated_wall_s,
            "notes": list(self.ctx.notes),
        }


def parameter_rows(space: SearchSpace) -> list[dict[str, Any]]:
    """One row per parameter: name, kind, range or choices (with its condition), scale, default."""
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
                     "scale": param.scale if param.kind in ("float", "int") else None, "default": plain(param.default)})
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
    if scheduler in ("hyperband", "bohb"):
        brackets = int(round(math.log(max_epochs) / math.log(rate))) + 1 if max_epochs > 1 else 1
        values = [successive_halving_epochs(max(1.0, max_epochs * rate ** -s), rate, max_epochs) for s in range(brackets)]
        return sum(values) / len(values)
    # none, median (an upper bound: the median rule's stops depend on the curves), pbt (all run fully)
    return float(max_epochs)


def first_batch(ctx: SweepContext) -> tuple[list[dict[str, Any]], bool]:
    """(params of the first trials, whether the backend will run exactly these)."""
    algorithm = ctx.config.algorithm
    size = max(1, min(algorithm.max_trials, ctx.config.resources.max_concurrent))
    if algorithm.sampler == "grid":
        return [plain(c) for c in combinations(grid_values(ctx.space, algorithm.grid_points))[:size]], False
    rng = np.random.default_rng(ctx.config.seed)
    return [plain(ctx.space.sample(rng, epoch_budget=ctx.max_epochs)) for _ in range(size)], True


def history_timing(ctx: SweepContext) -> TimingEstimate | None:
    per_epoch: list[float] = []
    for trial_dir in ctx.workspace.trials_dir.glob("*") if ctx.workspace.trials_dir.is_dir() else []:
        for line in read_lines(trial_dir / STATUS_FILE):
            if line.time_per_epoch and line.time_per_epoch > 0 and line.status == RunStatus.RUNNING:
                per_epoch.append(line.time_per_epoch)
    if not per_epoch:
        return None
    return TimingEstimate(float(np.median(per_epoch)), None, f"median of {len(per_epoch)} epochs in this sweep's trials")


def probe_timing(ctx: SweepContext, *, timeout_s: float = 1800.0) -> TimingEstimate:
    """Train the base spec (schema defaults for the searched values) for one epoch and time it."""
    folder = ctx.workspace.plan_dir / PROBE_DIR
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    defaults = {p.name: p.default for p in ctx.space.parameters if getattr(p, "default", None) is not None}
    try:
        spec = ctx.trial_spec(defaults, folder)
    except Exception:  # noqa: BLE001 - defaults may not satisfy conditions; the base spec alone is the fallback
        spec = ctx.trial_spec({}, folder)
    spec_path = ctx.write_trial_spec(spec, folder)
    env = {**ctx.trial_env(cuda_visible_devices=None), "EARLY_STOP_EPOCH": "1"}
    launch = TrialLaunch(trial_id="probe", trial_dir=folder, argv=ctx.train_argv(spec_path), metric=ctx.metric, env=env,
                         timeout_s=timeout_s, stop_grace_s=ctx.config.trial.stop_grace_s)
    started = time.monotonic()
    process = TrainerProcess(launch)
    process.start()
    outcome = process.wait()
    wall = time.monotonic() - started
    per_epoch = None
    for line in read_lines(folder / STATUS_FILE):
        if line.time_per_epoch and line.time_per_epoch > 0:
            per_epoch = line.time_per_epoch
    if per_epoch is None:
        reason = outcome.failure.reason.splitlines()[0] if outcome.failure else "no time_per_epoch in status.json"
        return TimingEstimate(None, None, f"probe failed ({reason})")
    return TimingEstimate(per_epoch, max(0.0, wall - per_epoch), f"probe: one epoch of the base spec took {wall:.1f}s wall")


def make_plan(ctx: SweepContext, *, probe: bool = False) -> SweepPlan:
    batch, exact = first_batch(ctx)
    timing = history_timing(ctx) or (probe_timing(ctx) if probe else TimingEstimate(None, None, "unknown: run `hpo plan --probe` to time one epoch"))
    return SweepPlan(ctx=ctx, batch=batch, batch_is_exact=exact,
                     expected_epochs_per_trial=expected_epochs(ctx.config.algorithm, ctx.max_epochs), timing=timing)


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
    atomic_write_json(folder / "plan.json", plan.to_dict())
    return folder / "plan.json"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else (f"{minutes}m {secs:02d}s" if minutes else f"{secs}s")


def render_plan(plan: SweepPlan, console: Any) -> None:
    from rich.table import Table

    ctx, algorithm = plan.ctx, plan.ctx.config.algorithm
    params = Table(title=f"Search space ({len(ctx.space.parameters)} parameters)", title_justify="left")
    for column in ("parameter", "kind", "range / choices", "scale", "default"):
        params.add_column(column)
    for row in parameter_rows(ctx.space):
        params.add_row(row["name"], str(row["kind"]), row["domain"], str(row["scale"] or ""), str(row["default"]))
    console.print(params)
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
                 "median": "median stopping", "bohb": "BOHB", "pbt": "population-based training"}[algorithm.scheduler]
    console.print(
        f"[bold]Budget[/]: {algorithm.max_trials} trials x up to {ctx.max_epochs} epochs, {plan.concurrency} at a time; "
        f"sampler {algorithm.sampler}, {scheduler} on backend {ctx.config.backend}; expected "
        f"{plan.expected_epochs_per_trial:.1f} epochs per trial ({plan.total_epochs:.0f} in all)."
    )
    console.print(f"[bold]Metric[/]: {ctx.metric} ({ctx.direction}); workspace {ctx.workspace.root}")
    console.print(f"[bold]Estimated wall time[/]: {format_duration(plan.estimated_wall_s)} ({plan.timing.source})")
    if plan.spec_files:
        console.print(f"First-batch specs: {plan.spec_files[0].parent}/")
    for note in ctx.notes:
        console.print(f"[yellow]note[/]: {note}")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= 24 else text[:21] + "..."
