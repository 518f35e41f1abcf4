"""Final evaluation of the promoted checkpoint (injected runner and the skill-command subprocess) and
checkpoint retention."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from hpo.promotion import EvaluationResult, SkillEvaluator, apply_retention, promote
from hpo.tracking import MlflowObserver
from tests.tracking.synthetic_sweep import FakeTrial, default_trials, params, replay_into, write_sweep

LATEST_LINK = "mask2former_model_latest.pth"

FAKE_EVALUATE = textwrap.dedent('''
    """Stands in for `mask2former evaluate -e SPEC`: same contract (status.json with kpi in results_dir)."""
    import json, os, sys
    import yaml
    spec = yaml.safe_load(open(sys.argv[sys.argv.index("-e") + 1]))
    results = spec["results_dir"]
    os.makedirs(results, exist_ok=True)
    checkpoint = spec["evaluate"]["checkpoint"]
    line = {"date": "2026-01-05", "time": "12:00:00", "verbosity": "INFO", "epoch": 0, "max_epoch": 0, "step": 0}
    with open(os.path.join(results, "status.json"), "a") as status:
        if not os.path.isfile(checkpoint):
            status.write(json.dumps({**line, "status": "FAILURE", "error_class": "data", "message": "no checkpoint", "kpi": {}}) + "\\n")
            sys.exit(6)
        status.write(json.dumps({**line, "status": "STARTED", "message": "evaluating", "kpi": {}}) + "\\n")
        status.write(json.dumps({**line, "status": "SUCCESS", "message": checkpoint,
                                 "kpi": {"mIoU": float(os.environ["FAKE_MIOU"]), "PQ": 0.5}}) + "\\n")
    print("evaluated", checkpoint)
''')


def fake_skill(folder: Path) -> Path:
    """A skill dir whose evaluate command is FAKE_EVALUATE (train/evaluate actions only, no export)."""
    (folder / "references").mkdir(parents=True)
    script = folder / "fake_evaluate.py"
    script.write_text(FAKE_EVALUATE)
    info = {"name": "fake-skill", "automl_enabled": True, "monitoring_metric": "mIoU", "actions": {
        "train": {"command": "true {config_path}"},
        "evaluate": {"command": f"{sys.executable} {script} -e {{config_path}}"},
    }}
    (folder / "references" / "skill_info.yaml").write_text(yaml.safe_dump(info))
    return folder


def test_injected_runner_result_is_set_beside_the_promoted_metric_and_the_baseline(tmp_path, migrated_sqlite_db):
    (tmp_path / "sweep_e").mkdir()
    shutil.copyfile(migrated_sqlite_db, tmp_path / "sweep_e" / "mlflow.db")
    baseline = {"checkpoint": "/pretrained.pth", "metric_name": "mIoU", "metric": 0.41, "kpi": {"mIoU": 0.41},
                "status": "ok"}
    sweep_dir = write_sweep(tmp_path, default_trials(), name="sweep_e", baseline=baseline,
                            tracking={"retry_interval_s": 0})
    replay_into(MlflowObserver(sweep_dir, plots=False), sweep_dir)
    calls = []

    def runner(spec_path: Path, results_dir: Path, metric: str) -> EvaluationResult:
        calls.append((spec_path, results_dir, metric))
        spec = yaml.safe_load(spec_path.read_text())
        assert Path(spec["evaluate"]["checkpoint"]).name == "model_epoch_001_step_00020.pth"
        return EvaluationResult(metric, 0.615, {"mIoU": 0.615}, 0, ("fixture",), None, 0.1)

    record = promote(sweep_dir, evaluator=runner).record
    assert calls == [(sweep_dir / "best" / "evaluate_spec.yaml", sweep_dir / "best" / "evaluate", "mIoU")]
    evaluation = record["evaluation"]
    assert (evaluation["promoted"], evaluation["final"], evaluation["baseline"]) == (0.62, 0.615, 0.41)
    assert evaluation["final_minus_promoted"] == pytest.approx(-0.005)
    assert evaluation["final_minus_baseline"] == pytest.approx(0.205)
    assert json.loads((sweep_dir / "best" / "best.json").read_text())["evaluation"]["final"] == 0.615
    from mlflow import MlflowClient

    parent = MlflowClient(tracking_uri=f"sqlite:///{sweep_dir / 'mlflow.db'}").get_run(record["mlflow"]["parent_run_id"])
    assert parent.data.metrics["final_eval_mIoU"] == 0.615 and parent.data.metrics["baseline_mIoU"] == 0.41
    assert parent.data.metrics["promoted_mIoU"] == 0.62


def test_the_skills_evaluate_command_runs_on_the_promoted_checkpoint(tmp_path, monkeypatch):
    skill = fake_skill(tmp_path / "skill")
    monkeypatch.setenv("FAKE_MIOU", "0.6125")
    sweep_dir = write_sweep(tmp_path / "ws", default_trials(), skill_dir=skill, tracking={"enabled": False})
    result = promote(sweep_dir)
    assert result.evaluation is not None and result.evaluation.error is None
    assert result.evaluation.value == 0.6125 and result.evaluation.kpi["PQ"] == 0.5
    assert result.evaluation.command[-2:] == ("-e", str(sweep_dir / "best" / "evaluate_spec.yaml"))
    log = (sweep_dir / "best" / "evaluate" / "evaluate.log").read_text()
    assert f"evaluated {sweep_dir / 'best' / 'model_epoch_001_step_00020.pth'}" in log
    # a skill without export: no export/deploy specs, but the evaluate spec and the checkpoint are there
    assert sorted(p.name for p in (sweep_dir / "best").glob("*.yaml")) == ["evaluate_spec.yaml", "train_spec.yaml"]
    assert result.record["evaluation"]["final"] == 0.6125


def test_a_failing_evaluation_is_recorded_not_raised(tmp_path, monkeypatch):
    skill = fake_skill(tmp_path / "skill")
    monkeypatch.setenv("FAKE_MIOU", "0.5")
    sweep_dir = write_sweep(tmp_path / "ws", default_trials(), skill_dir=skill, tracking={"enabled": False})
    evaluator = SkillEvaluator(skill)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"results_dir": str(tmp_path / "out"), "evaluate": {"checkpoint": "/missing.pth"}}))
    failed = evaluator(spec, tmp_path / "out", "mIoU")
    assert failed.value is None and failed.returncode == 6 and "exited with code 6" in failed.error
    assert promote(sweep_dir, evaluate=False).evaluation is None


def _checkpoints(sweep_dir: Path, trial: str) -> list[int]:
    return sorted(int(p.name[12:15]) for p in (sweep_dir / "trials" / trial).glob("model_epoch_*.pth"))


def test_retention_keeps_best_epochs_what_paused_trials_need_and_the_promoted_checkpoint(tmp_path):
    trials = default_trials() + [
        FakeTrial("paused", params(2e-4, 5, 136), [0.3, 0.5, 0.4], state="PAUSED"),
        FakeTrial("running", params(4e-4, 7, 144), [0.2, 0.3], state="RUNNING"),
    ]
    sweep_dir = write_sweep(tmp_path, trials, tracking={"enabled": False})
    record = promote(sweep_dir, trial_id="t1", epoch=2, evaluate=False).record  # pinned: not t1's best epoch
    # deleted per trial: t0 epochs 0,2,3,4; t1 epochs 0,1,3; t2 epoch 0; t3 none; paused epoch 0; running none
    assert record["retention"]["deleted"] == 4 + 3 + 1 + 0 + 1 + 0
    assert _checkpoints(sweep_dir, "t0") == [1]          # its best epoch, not its last
    assert _checkpoints(sweep_dir, "t1") == [2, 4]       # the promoted epoch and its best
    assert _checkpoints(sweep_dir, "t2") == [1]          # pruned: best epoch
    assert _checkpoints(sweep_dir, "t3") == [0]          # failed: its only validated epoch
    assert _checkpoints(sweep_dir, "paused") == [1, 2]   # best + the one it resumes from
    assert _checkpoints(sweep_dir, "running") == [0, 1]  # still training: untouched
    for trial in ("t0", "t1", "t2", "t3", "paused", "running"):
        link = sweep_dir / "trials" / trial / LATEST_LINK
        assert link.is_symlink() and link.exists(), trial
    assert (sweep_dir / "trials" / "t0" / LATEST_LINK).resolve().name == "model_epoch_001_step_00020.pth"
    assert (sweep_dir / "best" / "model_epoch_002_step_00030.pth").is_file()


def test_keep_all_checkpoints_keeps_everything(tmp_path):
    sweep_dir = write_sweep(tmp_path, default_trials(), tracking={"enabled": False},
                            promotion={"keep_all_checkpoints": True})
    record = promote(sweep_dir, evaluate=False).record
    assert record["retention"] == {"keep_all_checkpoints": True, "deleted": 0, "freed_bytes": 0}
    assert _checkpoints(sweep_dir, "t0") == [0, 1, 2, 3, 4]
    summary = json.loads((sweep_dir / "summary.json").read_text())
    report = apply_retention(sweep_dir, summary["trials"], metric="mIoU", direction="maximize",
                             protected=[sweep_dir / "trials" / "t0" / "model_epoch_004_step_00050.pth"])
    assert _checkpoints(sweep_dir, "t0") == [1, 4] and len(report.deleted) == 3 + 4 + 1
