"""A tracking server that goes away mid-sweep must not stop or slow the sweep (nor the promotion at its end);
what it missed is logged, exactly once, when it returns."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import mlflow

from hpo.cli import main
from hpo.promotion import promote
from hpo.tracking import MlflowObserver
from hpo.trials.record import TrialRecord
from tests.tracking.synthetic_sweep import default_trials, replay_into, write_sweep


def _timed(call, *args) -> float:
    started = time.monotonic()
    call(*args)
    return time.monotonic() - started


def test_server_stopped_mid_sweep_then_restarted_gets_everything_exactly_once(tmp_path, mlflow_server, unique_name,
                                                                                 monkeypatch):
    """The outage spans trials, a promotion (registry included) and ends before the sweep does."""
    name = unique_name("outage")
    model = unique_name("model")
    sweep_dir = write_sweep(tmp_path, default_trials(), name=name, tracking={
        "tracking_uri": mlflow_server.uri, "http_timeout_s": 2, "retry_interval_s": 0,
        "registered_model_name": model})
    summary = json.loads((sweep_dir / "summary.json").read_text())
    t0, t1, t2, t3 = (TrialRecord.from_dict(trial) for trial in summary["trials"])
    observer = MlflowObserver(sweep_dir, plots=False)
    observer.sweep_started()
    journal = observer.tracker.journal
    observer.trial_started(t0)
    for entry in t0.history[:2]:
        observer.trial_reported(t0, entry)
    assert journal.pending() == []

    mlflow_server.stop()
    durations = []
    for entry in t0.history[2:]:
        durations.append(_timed(observer.trial_reported, t0, entry))
    durations.append(_timed(observer.trial_finished, t0))
    durations.append(_timed(observer.trial_started, t1))
    for entry in t1.history:
        durations.append(_timed(observer.trial_reported, t1, entry))
    durations.append(_timed(observer.trial_finished, t1))
    assert max(durations) < 3.0, durations  # the sweep never waits on the dead server
    pending_while_down = len(journal.pending())
    assert pending_while_down >= 10
    assert json.loads(journal.state_path.read_text())["last_error"]
    promoted = promote(sweep_dir, evaluate=False, keep_all_checkpoints=True).record  # e.g. a resumed sweep's end
    assert promoted["trial_id"] == "t0" and (sweep_dir / "best" / "export_spec.yaml").is_file()
    assert promoted["mlflow"]["model_version"] is None and promoted["mlflow"]["pending_operations"] > pending_while_down

    mlflow_server.start()
    for trial in (t2, t3):
        observer.trial_started(trial)
        for entry in trial.history:
            observer.trial_reported(trial, entry)
        observer.trial_finished(trial)
    observer.sweep_finished(summary)
    assert journal.pending() == []
    assert journal.load_state()["skipped"] == []

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if run.data.tags.get("hpo.run_kind") == "sweep"]
    children = {run.data.tags["hpo.trial_id"]: run for run in runs if run.data.tags.get("hpo.run_kind") == "trial"}
    assert len(parents) == 1 and set(children) == {"t0", "t1", "t2", "t3"}
    for trial in (t0, t1, t2, t3):
        run_id = children[trial.trial_id].info.run_id
        for metric in ("mIoU", "val_loss", "epoch_time"):
            steps = [m.step for m in client.get_metric_history(run_id, metric)]
            assert sorted(steps) == [entry["epoch"] for entry in trial.history], (trial.trial_id, metric)
    assert {tid: run.info.status for tid, run in children.items()} == {
        "t0": "FINISHED", "t1": "FINISHED", "t2": "FINISHED", "t3": "FAILED"}
    assert {item.path for item in client.list_artifacts(children["t1"].info.run_id, "logs")} >= {"logs/status.json"}
    assert parents[0].data.metrics["best_mIoU"] == 0.62
    assert parents[0].data.tags["hpo.promoted.trial_id"] == "t0"

    version = client.get_model_version_by_alias(model, "champion")
    assert version.tags["trial_id"] == "t0" and version.run_id == children["t0"].info.run_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)  # MLflow resolves models:/ with process-wide URIs
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", mlflow_server.uri)
    served = Path(mlflow.artifacts.download_artifacts(f"models:/{model}@champion", dst_path=str(tmp_path / "dl")))
    assert [p.name for p in served.rglob("*.pth")] == ["model_epoch_001_step_00020.pth"]
    assert main(["sync-tracking", str(sweep_dir)]) == 0  # nothing left to log


def test_unresponsive_server_costs_one_timeout_then_the_sweep_runs_at_full_speed(tmp_path):
    """A server that accepts connections but never answers: short timeouts, then back-off, never a hang."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        sweep_dir = write_sweep(tmp_path, default_trials(), tracking={
            "tracking_uri": f"http://127.0.0.1:{port}", "http_timeout_s": 1, "retry_interval_s": 60})
        observer = MlflowObserver(sweep_dir, plots=False)
        started = time.monotonic()
        replay_into(observer, sweep_dir)
        elapsed = time.monotonic() - started
    assert elapsed < 15, elapsed  # one timed-out attempt at the first call, one forced at sweep end
    pending = observer.tracker.journal.pending()
    assert len(pending) > 30
    assert pending[0]["op"] == "experiment"
