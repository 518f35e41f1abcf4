"""Parent/child runs, params, metric histories, states and artifacts, on a SQLite file and on a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hpo.tracking import MlflowObserver, Tracker, TrackingSettings, log_sweep_from_files
from hpo.trials.record import TrialRecord
from tests.tracking.synthetic_sweep import default_trials, replay_into, write_sweep


def _log_sweep(tmp_path: Path, store, name: str, **kwargs) -> tuple[Path, MlflowObserver]:
    store.prepare(tmp_path / name)
    sweep_dir = write_sweep(tmp_path, default_trials(), name=name, tracking=store.tracking(), **kwargs)
    observer = MlflowObserver(sweep_dir, plots=False)
    replay_into(observer, sweep_dir)
    return sweep_dir, observer


def _runs(client, sweep_dir: Path, name: str):
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [run for run in runs if run.data.tags.get("hpo.run_kind") == "sweep"]
    children = {run.data.tags["hpo.trial_id"]: run for run in runs if run.data.tags.get("hpo.run_kind") == "trial"}
    return experiment, parents, children


def test_parent_and_child_runs_hold_config_params_states_and_histories(tmp_path, store, unique_name):
    name = unique_name("runs")
    sweep_dir, observer = _log_sweep(tmp_path, store, name)
    assert observer.tracker.flush(force=True).complete
    client = store.client(sweep_dir)
    experiment, parents, children = _runs(client, sweep_dir, name)

    assert experiment.name == name
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["automl_policy"] == "on"
    assert parent.data.tags["skill"] == "mask2former-hpo"
    assert parent.data.tags["backend"] == "optuna"
    assert parent.data.params["algorithm"] == "tpe"
    assert parent.data.params["budget.max_trials"] == "4"
    assert parent.data.params["sweep.metric"] == "mIoU"
    assert json.loads(parent.data.params["space.train.optim.lr"])["scale"] == "log"
    assert parent.data.tags["hpo.best_trial_id"] == "t0"
    assert parent.data.tags["hpo.best_epoch"] == "1"
    assert parent.data.metrics["best_mIoU"] == pytest.approx(0.62)
    assert parent.data.metrics["n_pruned"] == 1 and parent.data.metrics["n_failed"] == 1
    assert parent.data.metrics["gpu_hours"] == pytest.approx(2.0)
    assert parent.data.tags["best.param.train.optim.lr"] == "0.0003"
    top = {item.path for item in client.list_artifacts(parent.info.run_id)}
    assert {"sweep.yaml", "space.yaml", "summary.json"} <= top

    assert set(children) == {"t0", "t1", "t2", "t3"}
    for child in children.values():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert {tid: run.info.status for tid, run in children.items()} == {
        "t0": "FINISHED", "t1": "FINISHED", "t2": "FINISHED", "t3": "FAILED"}
    assert children["t2"].data.tags["pruned"] == "true"
    assert children["t2"].data.tags["hpo.pruned_at_epoch"] == "1"  # TAO epoch index of its last epoch
    assert children["t0"].data.tags["pruned"] == "false" and "pruned" not in children["t3"].data.tags
    assert children["t3"].data.tags["hpo.failure_class"] == "oom"
    assert children["t3"].data.tags["hpo.failure_reason"] == "CUDA out of memory"
    assert children["t0"].data.params == {"train.optim.lr": "0.0003", "model.mask_former.dec_layers": "6",
                                          "model.mask_former.hidden_dim": "256"}

    t0 = children["t0"].info.run_id
    history = client.get_metric_history(t0, "mIoU")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [  # step: TAO's epoch index
        (0, 0.30), (1, 0.62), (2, 0.55), (3, 0.50), (4, 0.48)]
    for metric in ("PQ", "pixel_acc", "val_loss", "train_loss", "lr", "epoch_time"):
        assert len(client.get_metric_history(t0, metric)) == 5, metric
    assert client.get_metric_history(t0, "epoch_time")[0].value == pytest.approx(360.0)
    assert children["t0"].data.metrics["best_mIoU"] == pytest.approx(0.62)
    artifacts = {item.path for item in client.list_artifacts(t0)} | {
        item.path for item in client.list_artifacts(t0, "logs")}
    assert {"spec.yaml", "trial.json", "logs/status.json", "logs/train.log"} <= artifacts
    spec = yaml.safe_load(Path(client.download_artifacts(t0, "spec.yaml", str(tmp_path / "dl"))).read_text())
    assert spec["train"]["optim"]["lr"] == 0.0003


def test_replaying_the_whole_journal_again_logs_nothing_twice(tmp_path, store, unique_name):
    """A crash between "applied" and "state saved" means re-applying operations: it must be harmless."""
    name = unique_name("replay")
    sweep_dir, observer = _log_sweep(tmp_path, store, name)
    journal = observer.tracker.journal
    state = journal.load_state()
    state.update(applied=0, offset=0, runs={}, experiment_id=None)
    journal.save_state(state)
    again = Tracker(observer.tracker.settings, sweep_dir).flush(force=True)
    assert again.complete and again.skipped == 0 and again.applied > 40

    client = store.client(sweep_dir)
    _, parents, children = _runs(client, sweep_dir, name)
    assert len(parents) == 1 and len(children) == 4
    history = client.get_metric_history(children["t1"].info.run_id, "mIoU")
    assert sorted(m.step for m in history) == [0, 1, 2, 3, 4]
    assert journal.load_state()["runs"]["trial/t1"] == children["t1"].info.run_id


def test_resumed_driver_reattaches_to_its_runs(tmp_path, store, unique_name):
    """A second driver (resume) reopens the same parent/child runs and logs only new epochs."""
    name = unique_name("resume")
    store.prepare(tmp_path / name)
    sweep_dir = write_sweep(tmp_path, default_trials()[:2], name=name, tracking=store.tracking())
    first = MlflowObserver(sweep_dir, plots=False)
    summary = json.loads((sweep_dir / "summary.json").read_text())
    first.sweep_started()
    t0, t1 = (TrialRecord.from_dict(trial) for trial in summary["trials"])
    first.trial_started(t0)
    for entry in t0.history[:3]:
        first.trial_reported(t0, entry)
    # The driver dies here; a new one resumes the sweep and replays what the trial status holds.
    second = MlflowObserver(sweep_dir, plots=False)
    second.sweep_started()
    second.trial_started(t0)
    for entry in t0.history:
        second.trial_reported(t0, entry)
    second.trial_finished(t0)
    second.trial_started(t1)
    second.trial_finished(t1)
    second.sweep_finished(summary)

    client = store.client(sweep_dir)
    _, parents, children = _runs(client, sweep_dir, name)
    assert len(parents) == 1 and set(children) == {"t0", "t1"}
    assert sorted(m.step for m in client.get_metric_history(children["t0"].info.run_id, "mIoU")) == [0, 1, 2, 3, 4]
    assert sorted(m.step for m in client.get_metric_history(children["t1"].info.run_id, "mIoU")) == [0, 1, 2, 3, 4]
    assert parents[0].info.status == "FINISHED" and children["t0"].info.status == "FINISHED"


def test_sweep_logged_afterwards_from_its_files(tmp_path, migrated_sqlite_db, unique_name):
    """`hpo sync-tracking --backfill`: a sweep that ran without tracking is logged from its folder."""
    import shutil

    name = unique_name("backfill")
    (tmp_path / name).mkdir()
    shutil.copyfile(migrated_sqlite_db, tmp_path / name / "mlflow.db")
    sweep_dir = write_sweep(tmp_path, default_trials(), name=name)
    log_sweep_from_files(sweep_dir, plots=False)
    log_sweep_from_files(sweep_dir, plots=False)  # idempotent
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{sweep_dir / 'mlflow.db'}")
    _, parents, children = _runs(client, sweep_dir, name)
    assert len(parents) == 1 and len(children) == 4
    assert sorted(m.step for m in client.get_metric_history(children["t0"].info.run_id, "mIoU")) == [0, 1, 2, 3, 4]
    experiment = client.get_experiment_by_name(name)
    assert experiment.artifact_location == (sweep_dir / "mlartifacts").as_uri()


def test_disabled_tracking_logs_nothing(tmp_path):
    sweep_dir = write_sweep(tmp_path, default_trials(), tracking={"enabled": False})
    observer = MlflowObserver(sweep_dir)
    replay_into(observer, sweep_dir)
    assert not observer.enabled
    assert not (sweep_dir / "mlflow.db").exists() and not (sweep_dir / "tracking").exists()
    assert TrackingSettings.for_sweep(sweep_dir, {"tracking": {"enabled": False}}).enabled is False
