"""Promotion: hand the best trial's best epoch over to export and deployment.

`promote(sweep_dir)` (run by the engine at sweep end and by `hpo promote`) does, in order:
1. picks the best COMPLETED trial by metric and direction and its best epoch (`selection.py`), or the
   trial/epoch pinned by the caller; with a held-out `datasets.test`, the top-k are first evaluated on it
   once and `promotion.champion` decides which score picks the trial (`holdout.py`); best.json's `scores`
   set the selection and the test score side by side and say which one is the final score;
2. rebuilds `best/` next to the old one and swaps it in: the exact checkpoint (hard link, else copy),
   `train_spec.yaml`, `export_spec.yaml`, `evaluate_spec.yaml`, the three deploy specs (`specs.py`), the
   export/deploy specs at the tuned test size or `deploy.input_size` (`export_size.py`);
3. runs the final evaluation of the promoted checkpoint with the skill's evaluate command (`evaluation.py`)
   and sets it beside the promoted metric and the baseline; when the export size differs from the tuned one
   (or `promotion.export: true`), exports and scores the graph at the export size too (`deploy_check.py`);
4. logs it to MLflow: the checkpoint as a model version of `registered_model_name` with the alias
   (`champion`) moved to it, and the result on the sweep's parent run (journaled: works offline too);
5. deletes checkpoints no one needs (`retention.py`) unless `keep_all_checkpoints`;
6. writes `best/best.json` last, so its presence means the handoff is complete.
Promoting again (a resumed sweep found a better trial) repeats all of it; the alias moves, old versions stay.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpo.promotion import holdout
from hpo.promotion.best_dir import record_promoted_files, swap_in
from hpo.promotion.deploy_check import describe, export_and_evaluate, wants_deploy_check
from hpo.promotion.evaluation import EvaluationResult, EvaluationRunner, SkillEvaluator, baseline_value
from hpo.promotion.export_size import choose_export_size
from hpo.promotion.mlflow_model import package_model
from hpo.promotion.registry import registry_checkpoint
from hpo.promotion.retention import RetentionReport, apply_retention
from hpo.promotion.selection import Candidate, PromotionError, select
from hpo.promotion.specs import HandoffPaths, HandoffSpecs, build_handoff_specs, template_export_shape
from hpo.tracking import sweep_files
from hpo.tracking.observer import SWEEP_RUN, log_sweep_from_files, trial_key
from hpo.tracking.settings import TrackingSettings
from hpo.tracking.tracker import Tracker
from skillkit.errors import SchemaError, SpecError
from skillkit.files import BEST_DIR, BEST_FILE, SPEC_FILE, TRIALS_DIR, atomic_write_json
from skillkit.redaction import Redactor
from skillkit.spec import dump_spec, read_spec_file
from skillkit.spec.dotted import section

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PromotionResult:
    """The outcome of one promotion; `record` is exactly what best.json holds."""

    best_dir: Path
    candidate: Candidate
    evaluation: EvaluationResult | None
    retention: RetentionReport | None
    record: Mapping[str, Any]


def promote(sweep_dir: str | os.PathLike[str], *, trial_id: str | None = None, epoch: int | None = None,
            evaluate: bool | None = None, evaluator: EvaluationRunner | None = None, register: bool | None = None,
            keep_all_checkpoints: bool | None = None, settings: TrackingSettings | None = None,
            tracker: Tracker | None = None) -> PromotionResult:
    """Promote the best (or the pinned) trial/epoch of the sweep in `sweep_dir`.

    Unset options come from the sweep config: `promotion.evaluate` (default true),
    `promotion.keep_all_checkpoints` / top-level `keep_all_checkpoints` (default false) and the `tracking`
    section (registry name, alias, whether MLflow is used at all).
    """
    sweep_dir = Path(sweep_dir).resolve()
    config = sweep_files.load_config(sweep_dir)
    summary = sweep_files.load_summary(sweep_dir, config)
    metric, direction = str(summary["metric"]), str(summary["direction"])
    if metric == "kpi":
        metric = sweep_files.DEFAULT_METRIC
    options = _promotion_options(config)
    evaluate = options["evaluate"] if evaluate is None else evaluate
    keep_all = options["keep_all_checkpoints"] if keep_all_checkpoints is None else keep_all_checkpoints

    candidate = select(summary["trials"], sweep_dir, metric, direction, trial_id=trial_id, epoch=epoch)
    test_report = None
    if trial_id is None and holdout.test_settings(config)[0]:
        top = holdout.top_candidates(summary["trials"], sweep_dir, metric, direction, holdout.test_settings(config)[1])
        test_report = holdout.evaluate_top_k(sweep_dir, config, top, metric=metric,
                                             runner=evaluator or _default_evaluator(config), skill=_skill_dir(config))
        candidate = holdout.champion(test_report, top, direction) or candidate
    elif holdout.test_settings(config)[0]:
        test_report = holdout.recorded_report(sweep_dir)  # pinned by hand: the scores measured after the sweep
    trial_dir = sweep_dir / TRIALS_DIR / candidate.trial_id
    spec_path = trial_dir / SPEC_FILE
    if not spec_path.is_file():
        raise PromotionError(f"trial {candidate.trial_id} has no spec.yaml in '{trial_dir}'; it cannot be handed off.")
    train_spec = read_spec_file(spec_path)

    best_dir = sweep_dir / BEST_DIR
    paths = HandoffPaths(best_dir=best_dir, checkpoint=best_dir / candidate.checkpoint.name)
    templates = _templates(config)
    size = choose_export_size(train_spec, config, template_export_shape(train_spec, templates.get("export") or {}))
    specs = build_handoff_specs(train_spec, paths, templates=templates, actions=_actions(config),
                                export_size=(size.width, size.height), carried=_handoff_keys(config))
    validation = _validate(specs, config)
    kept_previous = _write_best_dir(best_dir, candidate.checkpoint, specs)

    evaluation = None
    if evaluate and specs.evaluate is not None:
        runner = evaluator or _default_evaluator(config)
        evaluation = runner(best_dir / "evaluate_spec.yaml", paths.evaluate_dir, metric)
        if evaluation.error:
            logger.warning("final evaluation of the promoted checkpoint: %s", evaluation.error)

    record = _record(sweep_dir, summary, candidate, paths, specs, evaluation, validation, metric, direction)
    record["scores"] = holdout.scores_record(test_report, candidate, metric)
    record["export"] = size.to_dict()
    if specs.export is not None and specs.deploy_evaluate is not None and wants_deploy_check(options["export"], size):
        deploy_runner = evaluator if isinstance(evaluator, SkillEvaluator) else _default_evaluator(config)
        check = export_and_evaluate(deploy_runner, specs, paths, size, metric)
        record["evaluation"].update(describe(check, candidate.metric, metric))
        if check.value is None:
            logger.warning("deploy-side evaluation at %dx%d: %s", size.width, size.height,
                           check.export_error or (check.evaluation.error if check.evaluation else "no result"))
    elif size.differs and size.tuned is not None:  # differs implies a known tuned size
        logger.warning("the export size %dx%d differs from the tuned test size %dx%d and promotion.export is false: "
                       "the deployed score is not measured", size.width, size.height, *size.tuned)
    protected = [candidate.checkpoint, paths.checkpoint]
    best_in_summary = (summary.get("best") or {}).get("checkpoint")
    if best_in_summary:
        protected.append(sweep_dir / str(best_in_summary))
    retention = apply_retention(sweep_dir, summary["trials"], metric=metric, direction=direction,
                                protected=protected, keep_all=keep_all)
    record["retention"] = {"keep_all_checkpoints": keep_all, "deleted": len(retention.deleted),
                           "freed_bytes": retention.freed_bytes}

    settings = settings or (tracker.settings if tracker else TrackingSettings.for_sweep(sweep_dir, config))
    use_mlflow = settings.enabled if register is None else register
    if use_mlflow:
        tracker = tracker or _tracker(sweep_dir, settings)
        record["mlflow"] = _log_to_mlflow(sweep_dir, settings, tracker, candidate, train_spec, record, specs)
    if kept_previous is not None:
        record["previous_best_kept_at"] = str(kept_previous)
    _write_json(best_dir / BEST_FILE, record)
    record_promoted_files(best_dir)
    if use_mlflow and tracker is not None:
        tracker.log_artifact(SWEEP_RUN, best_dir / BEST_FILE, artifact_path="best")
        tracker.flush(force=True)
    return PromotionResult(best_dir, candidate, evaluation, retention, record)


def _tracker(sweep_dir: Path, settings: TrackingSettings) -> Tracker:
    redactor = Redactor()
    redactor.learn(sweep_files.load_config(sweep_dir))
    return Tracker(settings, sweep_dir, redactor=redactor)


def _promotion_options(config: Mapping[str, Any]) -> dict[str, Any]:
    section = config.get("promotion") or {}
    if not isinstance(section, Mapping):
        section = {}
    keep_all = section.get("keep_all_checkpoints", config.get("keep_all_checkpoints", False))
    return {"evaluate": bool(section.get("evaluate", True)), "keep_all_checkpoints": bool(keep_all),
            "evaluate_timeout_s": section.get("evaluate_timeout_s"), "export": section.get("export", "auto")}


def _skill_dir(config: Mapping[str, Any]) -> Any:
    from skillkit.skill_dir import SkillDir

    return SkillDir(config.get("skill_dir"))


def _templates(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The skill's templates for the handoff actions (those it ships; TAO's deploy shape otherwise)."""
    try:
        skill = _skill_dir(config)
    except SchemaError:
        return {}
    templates = {}
    for action in ("export", "evaluate", "inference", "deploy_gen_trt_engine", "deploy_evaluate", "deploy_inference"):
        if skill.has_template(action):
            templates[action] = skill.template(action)
    return templates


def _handoff_keys(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The skill's structural spec keys that export and deploy specs carry over (none when it is unreadable)."""
    try:
        return _skill_dir(config).handoff_keys
    except SchemaError:
        return ()


def _actions(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The skill's actions (all handoff actions when the skill dir cannot be read)."""
    try:
        return tuple(_skill_dir(config).info["actions"])
    except SchemaError:
        return ("export", "evaluate")


def _validate(specs: HandoffSpecs, config: Mapping[str, Any]) -> dict[str, str]:
    """Validate the export and evaluate specs against the skill's schemas; a failure stops promotion."""
    from skillkit.spec import validate_spec

    try:
        skill = _skill_dir(config)
    except SchemaError:
        return {"export": "not validated: no skill dir", "evaluate": "not validated: no skill dir"}
    outcome = {}
    for action, spec in (("export", specs.export), ("evaluate", specs.evaluate),
                         ("gen_trt_engine", specs.deploy_gen_trt_engine)):
        if spec is None:
            continue
        if not skill.has_schema(action):
            outcome[action] = "not validated: the skill has no schema for it"
            continue
        if action == "gen_trt_engine" and set(spec) <= {"results_dir", "gen_trt_engine"}:
            outcome[action] = "not validated: TAO's trimmed deploy shape"
            continue
        try:
            validate_spec(spec, action, skill, source=f"promoted {action} spec", check_classes=False)
        except SpecError as error:
            raise PromotionError(f"the promoted {action} spec does not validate: {error}") from None
        outcome[action] = "valid"
    return outcome


def _write_best_dir(best_dir: Path, checkpoint: Path, specs: HandoffSpecs) -> Path | None:
    """Build the new best/ beside the old one and swap it in, so best/ is never half-written; the old one is
    kept (moved aside; its new path returned) when it holds files the user put there (`best_dir.py`)."""

    def fill(staging: Path) -> None:
        target = staging / checkpoint.name
        try:
            os.link(checkpoint, target)
        except OSError:
            shutil.copy2(checkpoint, target)
        headers = specs.headers(best_dir)
        for name, spec in specs.files().items():
            path = dump_spec(spec, staging / name)
            if name in headers:
                comment = "".join(f"# {line}".rstrip() + "\n" for line in headers[name].splitlines())
                path.write_text(comment + path.read_text())

    return swap_in(best_dir, fill)


def _default_evaluator(config: Mapping[str, Any]) -> SkillEvaluator:
    options = _promotion_options(config)
    trial = section(config, "trial")
    env = {str(k): str(v) for k, v in (trial.get("env") or {}).items()}
    return SkillEvaluator(config.get("skill_dir"), timeout_s=options["evaluate_timeout_s"], env=env)


def _record(sweep_dir: Path, summary: Mapping[str, Any], candidate: Candidate, paths: HandoffPaths,
            specs: HandoffSpecs, evaluation: EvaluationResult | None, validation: Mapping[str, str], metric: str,
            direction: str) -> dict[str, Any]:
    trial = candidate.trial
    baseline = baseline_value(summary.get("baseline"), metric)
    final = evaluation.value if evaluation else None
    record: dict[str, Any] = {
        "sweep": summary.get("sweep"),
        "trial_id": candidate.trial_id,
        "trial_number": trial.number,
        "trial_state": trial.state,
        "epoch": candidate.epoch,
        "step": candidate.step,
        "metric": {"name": metric, "direction": direction, "value": candidate.metric},
        "params": dict(trial.params),
        "last_epoch": trial.last_epoch(),
        "evaluation": {
            "metric": metric, "promoted": candidate.metric, "final": final, "baseline": baseline,
            "final_minus_promoted": None if final is None or candidate.metric is None else final - candidate.metric,
            "final_minus_baseline": None if final is None or baseline is None else final - baseline,
            "run": evaluation.to_dict() if evaluation else None,
        },
        "paths": {
            "checkpoint": str(paths.checkpoint),
            "source_checkpoint": str(candidate.checkpoint),
            **{name.removesuffix(".yaml"): str(paths.best_dir / name) for name in specs.files()},
            **({"onnx_file": str(paths.onnx_file), "trt_engine": str(paths.trt_engine)} if specs.export else {}),
        },
        "validation": dict(validation),
        "mlflow": {"run_id": trial.mlflow_run_id},
        "promoted_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    return record


def _log_to_mlflow(sweep_dir: Path, settings: TrackingSettings, tracker: Tracker, candidate: Candidate,
                   train_spec: Mapping[str, Any], record: dict[str, Any], specs: HandoffSpecs) -> dict[str, Any]:
    """Register the checkpoint (alias moved to it) and record the promotion on the parent run."""
    key = trial_key(candidate.trial_id)
    if not tracker.has_run(key) or not tracker.has_run(SWEEP_RUN):
        log_sweep_from_files(sweep_dir, settings=settings)  # a sweep run without tracking: log it now
    tracker.redactor.learn(train_spec)
    metric = record["metric"]
    upload = registry_checkpoint(candidate.checkpoint, train_spec, sweep_dir / "tracking" / "registry" /
                                 candidate.trial_id, tracker.redactor)
    artifact_path = f"checkpoints/epoch_{candidate.epoch:03d}"
    tracker.log_artifact(key, upload, artifact_path=artifact_path, redact=False)
    onnx = Path(record["paths"]["onnx_file"]) if record["paths"].get("onnx_file") else None
    with_onnx = onnx is not None and onnx.is_file()
    # The ONNX file, once exported, travels in the model: a model with it is a new version (the alias moves).
    version_key = f"{tracker.journal.journal_id}:{candidate.trial_id}:{candidate.checkpoint.name}" + (
        ":onnx" if with_onnx else "")
    tags = {"sweep": record["sweep"], "trial_id": candidate.trial_id, "epoch": candidate.epoch,
            "metric": metric["name"], "metric_value": metric["value"], "direction": metric["direction"],
            "checkpoint": candidate.checkpoint.name, "sweep_dir": str(sweep_dir)}
    model_error, logged_model = None, None
    if tracker.logged_model_id(version_key):
        logged_model = version_key  # promoted again: the same checkpoint's model is already logged
    elif specs.inference is not None:
        packager = _default_evaluator(sweep_files.load_config(sweep_dir))
        folder = f"{candidate.trial_id}_epoch_{candidate.epoch:03d}" + ("_onnx" if with_onnx else "")
        packaged = package_model(packager, specs.inference, upload, sweep_dir / "tracking" / "mlflow_models" / folder,
                                 tracker.redactor, onnx_file=onnx if with_onnx else None)
        model_error = packaged.error
        if packaged.folder is not None:
            logged_model = version_key
            tracker.log_model(key, packaged.folder, version_key=version_key, name=settings.registered_model_name,
                              tags=tags, params=record["params"], step=candidate.epoch, link_runs=(SWEEP_RUN,))
    else:
        model_error = "the skill has no inference action to package a model for"
    if model_error:
        logger.warning("the champion is registered as a checkpoint folder, not a loadable MLflow model: %s", model_error)
    tracker.register_model(key, artifact_path=artifact_path, version_key=version_key, tags=tags,
                           description=f"sweep {record['sweep']}, trial {candidate.trial_id}, epoch {candidate.epoch}",
                           logged_model=logged_model)
    evaluation = record["evaluation"]
    parent_metrics = {f"promoted_{metric['name']}": metric["value"], f"final_eval_{metric['name']}": evaluation["final"],
                      f"baseline_{metric['name']}": evaluation["baseline"]}
    scores = record.get("scores") or {}
    parent_metrics.update({f"selection_{metric['name']}": scores.get("selection"), f"test_{metric['name']}": scores.get("test"),
                           f"final_{metric['name']}": scores.get("final")})
    tracker.log_metrics(SWEEP_RUN, {k: v for k, v in parent_metrics.items() if v is not None}, step=candidate.epoch)
    for item in scores.get("top_k") or []:  # each candidate's child run: its test score beside its selection score
        if item.get("test") is not None and tracker.has_run(trial_key(item["trial_id"])):
            tracker.log_metrics(trial_key(item["trial_id"]), {f"test_{metric['name']}": item["test"]}, step=item["epoch"])
    tracker.set_tags(SWEEP_RUN, {"hpo.final_score_source": scores.get("final_source", "selection"),
                                 "hpo.champion_rule": scores.get("champion_rule", "selection")})
    tracker.set_tags(SWEEP_RUN, {"hpo.promoted.trial_id": candidate.trial_id, "hpo.promoted.epoch": candidate.epoch,
                                 "hpo.promoted.checkpoint": candidate.checkpoint.name,
                                 "hpo.promoted.model": f"{settings.registered_model_name}@{settings.alias}"})
    for name in specs.files():
        tracker.log_artifact(SWEEP_RUN, sweep_dir / BEST_DIR / name, artifact_path="best")
    result = tracker.flush(force=True)
    version = tracker.model_version(version_key)
    model_id = tracker.logged_model_id(version_key) if logged_model else None
    links = {"hpo.promoted.model_version": version["version"] if version else None,
             "hpo.promoted.model_id": model_id, "mlflow.note.content": _parent_note(settings, candidate, version, model_id)}
    tracker.set_tags(SWEEP_RUN, {k: v for k, v in links.items() if v is not None})
    result = tracker.flush(force=True)
    return {
        "tracking_uri": settings.tracking_uri,
        "experiment": settings.experiment_name,
        "run_id": tracker.run_id(key),
        "parent_run_id": tracker.run_id(SWEEP_RUN),
        "registered_model": settings.registered_model_name,
        "alias": settings.alias,
        "model_version": version["version"] if version else None,
        "model_uri": f"models:/{settings.registered_model_name}@{settings.alias}",
        "logged_model_id": model_id,
        "model_error": model_error,
        "pending_operations": result.pending,
    }


def _parent_note(settings: TrackingSettings, candidate: Candidate, version: Mapping[str, Any] | None,
                 model_id: str | None) -> str:
    """The parent run's description (markdown, shown on its page): links to the champion's models."""
    name = settings.registered_model_name
    lines = [f"**Champion:** trial `{candidate.trial_id}`, epoch {candidate.epoch}, checkpoint `{candidate.checkpoint.name}`."]
    if version:
        lines.append(f"- Registered model: [{name} version {version['version']}](#/models/{name}/versions/{version['version']})"
                     f" (alias `{settings.alias}`: `models:/{name}@{settings.alias}`)")
    if model_id:
        lines.append(f"- Logged model: `models:/{model_id}`")
    return "\n".join(lines)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_json(path, data)
