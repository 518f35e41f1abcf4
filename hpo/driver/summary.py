"""`summary.json`: one object with every trial (its trial.json), the best trial, the baseline and the default
configuration's score next to the best (`default_vs_best.py`).

Rebuilt from the trial folders (not from backend state) so it always agrees with trial.json files, also
after a resume, and includes trials a crashed driver's backend never recorded.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from hpo.driver.default_vs_best import compare
from hpo.trials.record import best_trial, load_records, now_iso
from skillkit.files import BASELINE_FILE, atomic_write_json

if TYPE_CHECKING:
    from hpo.driver.context import SweepContext


def build_summary(
    ctx: SweepContext,
    *,
    status: str = "running",
    stop_reason: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    records = load_records(ctx.workspace.trials_dir)
    best = best_trial(records, ctx.direction)
    best_entry = None
    if best is not None and best.best is not None:
        checkpoint = best.best.get("checkpoint")
        best_entry = {
            "trial_id": best.trial_id, "epoch": best.best["epoch"], "step": best.best.get("step"),
            "metric": best.best["metric"],
            "checkpoint": f"trials/{best.trial_id}/{checkpoint}" if checkpoint else None,
            "params": dict(best.params),
        }
    baseline = None
    baseline_file = ctx.workspace.baseline_dir / BASELINE_FILE
    if baseline_file.is_file():
        baseline = json.loads(baseline_file.read_text())
    algorithm = ctx.config.algorithm
    test = json.loads(ctx.workspace.test_scores_file.read_text()) if ctx.workspace.test_scores_file.is_file() else None
    if test is None:
        test = {"dataset": ctx.config.datasets.test, "top_k": [],
                "note": ("evaluated on the held-out test dataset after the sweep (promotion)" if ctx.config.datasets.test
                         else "no held-out test dataset (datasets.test): the final score is the selection score")}
    counts: dict[str, int] = {}
    for record in records:
        counts[record.state] = counts.get(record.state, 0) + 1
    return {
        "sweep": ctx.config.name, "metric": ctx.metric, "direction": ctx.direction, "algorithm": algorithm.name,
        "backend": ctx.config.backend, "sampler": algorithm.sampler, "scheduler": algorithm.scheduler,
        "max_trials": algorithm.max_trials, "max_epochs": ctx.max_epochs, "status": status,
        "stop_reason": stop_reason, "message": message, "counts": counts, "updated_at": now_iso(),
        "trials": [record.to_dict() for record in records], "best": best_entry, "baseline": baseline,
        "test": test,  # selection and test scores of the top-k side by side (test_scores.json)
        # the schema defaults' score next to the best after the same epochs (None: no trial ran the defaults)
        "default_vs_best": compare(records, ctx.space, ctx.direction) if records else None,
    }


def write_summary(ctx: SweepContext, **kwargs: Any) -> dict[str, Any]:
    summary = build_summary(ctx, **kwargs)
    atomic_write_json(ctx.workspace.summary_file, summary)
    return summary
