"""Baseline: when the base spec starts from a checkpoint (the skill's `ptm_if_no_resume_model` key, e.g.
`train.pretrained_model_path`), evaluate that checkpoint with the skill's evaluate command before the sweep,
so the report can say how much the sweep gained over where it started.

The evaluate spec is the skill's evaluate template overlaid with every setting of the train spec that the
evaluate template also has (model, dataset, ...), plus the checkpoint and a results folder. The result is
`baseline/baseline.json`; a failed evaluation is recorded there and does not stop the sweep. A resumed
sweep reuses the recorded baseline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpo.driver.context import SweepContext
from hpo.trials.failures import log_tail
from hpo.trials.runner import TrainerProcess, TrialLaunch
from skillkit.errors import UserError
from skillkit.files import BASELINE_FILE, LOG_FILE, SPEC_FILE, atomic_write_json
from skillkit.spec import dump_spec, get_dotted, set_dotted, validate_spec
from skillkit.status import STATUS_FILE, read_lines


def _overlay(template: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    """`template` with the values `source` has at the same paths (recursively)."""
    out: dict[str, Any] = {}
    for key, value in template.items():
        if key not in source:
            out[key] = value
        elif isinstance(value, Mapping) and isinstance(source[key], Mapping):
            out[key] = _overlay(value, source[key])
        else:
            out[key] = source[key]
    return out


def baseline_checkpoint(ctx: SweepContext) -> str | None:
    if not ctx.keys.pretrained:
        return None
    value = get_dotted(ctx.base_spec, ctx.keys.pretrained, None)
    return str(value) if value else None


def evaluate_spec(ctx: SweepContext, checkpoint: str, results_dir: Path) -> dict[str, Any]:
    if not ctx.keys.eval_checkpoint:
        raise UserError(f"skill '{ctx.skill.path}' has no evaluate spec_params entry with role parent_model; "
                        "the baseline cannot name its checkpoint.")
    spec = _overlay(ctx.skill.template("evaluate"), ctx.base_spec)
    set_dotted(spec, ctx.keys.eval_checkpoint, checkpoint)
    set_dotted(spec, ctx.keys.eval_results_dir or ctx.keys.results_dir, str(results_dir))
    validate_spec(spec, "evaluate", ctx.skill, source=str(results_dir / SPEC_FILE))
    return spec


def run_baseline(ctx: SweepContext) -> dict[str, Any] | None:
    """Evaluate the base spec's starting checkpoint (once per sweep); None when there is none or it is off."""
    checkpoint = baseline_checkpoint(ctx)
    if checkpoint is None or not ctx.config.baseline_enabled:
        return None
    folder = ctx.workspace.baseline_dir
    result_file = folder / BASELINE_FILE
    if result_file.is_file():
        return json.loads(result_file.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"checkpoint": checkpoint, "metric_name": ctx.metric, "metric": None, "kpi": None,
                              "status": "failed", "failure_reason": None}
    try:
        spec = evaluate_spec(ctx, checkpoint, folder)
    except UserError as error:
        result["failure_reason"] = str(error)
        atomic_write_json(result_file, result)
        return result
    spec_path = dump_spec(spec, folder / SPEC_FILE)
    launch = TrialLaunch(
        trial_id="baseline", trial_dir=folder, argv=tuple(ctx.skill.command("evaluate", spec_path)), metric=ctx.metric,
        env=ctx.trial_env(cuda_visible_devices=None), timeout_s=ctx.config.baseline_timeout_s,
        stop_grace_s=ctx.config.trial.stop_grace_s,
    )
    process = TrainerProcess(launch)
    process.start()
    outcome = process.wait()
    kpi = None
    for line in read_lines(folder / STATUS_FILE):
        if line.metric(ctx.metric) is not None:
            kpi = dict(line.kpi)
    if kpi is not None and (outcome.exit_code == 0):
        result.update(status="ok", metric=float(kpi[ctx.metric]), kpi=kpi)
    else:
        reason = outcome.failure.reason if outcome.failure else f"the evaluate command reported no '{ctx.metric}'"
        result["failure_reason"] = reason + ("" if outcome.failure else "; last log lines:\n" + log_tail(folder / LOG_FILE))
    atomic_write_json(result_file, result)
    return result
