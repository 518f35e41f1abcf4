"""What the parent run records when a sweep ends: best trial, its metric and params, counts, GPU-hours,
summary.json and the plots.

Best values go to tags and metrics, not params: MLflow params are write-once, and a resumed sweep can find
a better trial later. Metrics are logged with step = number of finished trials, so the parent's
`best_<metric>` history shows how the sweep improved across resumes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpo.tracking import sweep_files
from hpo.tracking.tracker import Tracker

SWEEP_RUN = "sweep"


@dataclasses.dataclass(frozen=True)
class SweepStats:
    """Counts and totals over a sweep's trials."""

    trials: int
    completed: int
    pruned: int
    paused: int
    failed: int
    running: int
    gpu_hours: float
    wall_hours: float


def sweep_stats(trials: list[Mapping[str, Any]]) -> SweepStats:
    states = [str(t.get("state")) for t in trials]
    return SweepStats(
        trials=len(trials), completed=states.count("COMPLETED"), pruned=states.count("PRUNED"),
        paused=states.count("PAUSED"), failed=states.count("FAILED"), running=states.count("RUNNING"),
        gpu_hours=sum(sweep_files.gpu_hours(t) for t in trials),
        wall_hours=sum(sweep_files.trial_hours(t) for t in trials),
    )


def best_of(summary: Mapping[str, Any], sweep_dir: Path, metric: str, direction: str) -> dict[str, Any] | None:
    """The sweep's best (trial, epoch, metric, params, checkpoint) by the same rule promotion uses."""
    from hpo.trials.candidates import PromotionError, select

    try:
        candidate = select(summary.get("trials") or [], sweep_dir, metric, direction)
    except PromotionError:
        return None
    return {
        "trial_id": candidate.trial_id, "epoch": candidate.epoch, "step": candidate.step,
        "metric": candidate.metric, "params": dict(candidate.trial.params),
        "checkpoint": str(candidate.checkpoint.relative_to(sweep_dir)),
    }


def log_sweep_summary(tracker: Tracker, sweep_dir: Path, summary: Mapping[str, Any], *, metric: str,
                      direction: str, plots: bool = True) -> dict[str, Any] | None:
    """Log the end-of-sweep record to the parent run; returns the best trial it found (or None)."""
    trials = list(summary.get("trials") or [])
    stats = sweep_stats(trials)
    finished = stats.completed + stats.pruned + stats.failed
    metrics: dict[str, Any] = {
        "n_trials": stats.trials, "n_completed": stats.completed, "n_pruned": stats.pruned,
        "n_paused": stats.paused, "n_failed": stats.failed, "gpu_hours": stats.gpu_hours,
        "trial_hours": stats.wall_hours,
    }
    best = best_of(summary, sweep_dir, metric, direction)
    tags: dict[str, Any] = {"hpo.n_trials": stats.trials}
    if best is not None:
        metrics[f"best_{metric}"] = best["metric"]
        tags.update({"hpo.best_trial_id": best["trial_id"], "hpo.best_epoch": best["epoch"],
                     "hpo.best_metric": best["metric"], "hpo.best_checkpoint": best["checkpoint"]})
        child = tracker.run_id(f"trial/{best['trial_id']}")
        if child:
            tags["hpo.best_run_id"] = child
        tags.update({f"best.param.{name}": value for name, value in best["params"].items()})
    tracker.log_metrics(SWEEP_RUN, metrics, step=finished)
    tracker.set_tags(SWEEP_RUN, tags)
    summary_path = sweep_dir / sweep_files.SUMMARY_FILE
    if summary_path.is_file():
        tracker.log_artifact(SWEEP_RUN, summary_path)
    else:
        tracker.log_json(SWEEP_RUN, dict(summary), sweep_files.SUMMARY_FILE)
    if plots:
        _log_plots(tracker, sweep_dir, summary)
    return best


def _log_plots(tracker: Tracker, sweep_dir: Path, summary: Mapping[str, Any]) -> None:
    from hpo.tracking.plots import make_plots

    plots = make_plots(summary, sweep_dir / "plots", space=sweep_files.load_space(sweep_dir))
    for path in plots.files:
        tracker.log_artifact(SWEEP_RUN, path, artifact_path="plots")
    if plots.skipped:
        tracker.set_tags(SWEEP_RUN, {f"hpo.plot_skipped.{name}": reason for name, reason in plots.skipped.items()})
