"""Model Registry: the promoted checkpoint becomes a version under the alias, loadable by `models:/NAME@ALIAS`;
re-promotion after a resumed sweep moves the alias. (A promotion while the server is down: test_tracking_outage.)"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow

from hpo.promotion import promote
from hpo.tracking import MlflowObserver
from tests.tracking.synthetic_sweep import FakeTrial, default_trials, params, replay_into, write_sweep, write_trial


def _download(monkeypatch, uri: str, model_uri: str, dst: Path) -> Path:
    # MLflow resolves `models:/` URIs with the process-wide registry/tracking URIs, whatever registry_uri= says
    # (left unset, it would create ./mlflow.db).
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(dst), tracking_uri=uri, registry_uri=uri))


def _add_better_trial(sweep_dir: Path) -> None:
    """What a resumed sweep leaves behind: one more trial, better than every earlier one."""
    import datetime as _dt

    summary = json.loads((sweep_dir / "summary.json").read_text())
    record = write_trial(sweep_dir, FakeTrial("t9", params(2e-4, 8, 320), [0.5, 0.7, 0.75, 0.71], number=9),
                         metric="mIoU", direction="maximize", base_spec=json.loads(json.dumps(
                             __import__("yaml").safe_load((sweep_dir / "trials" / "t0" / "spec.yaml").read_text()))),
                         started=_dt.datetime(2026, 1, 6, 9, 0, 0))
    summary["trials"].append(record)
    (sweep_dir / "summary.json").write_text(json.dumps(summary))


def test_promoted_checkpoint_is_registered_under_the_alias_and_the_alias_moves(tmp_path, store, unique_name, monkeypatch):
    name = unique_name("registry")
    store.prepare(tmp_path / name)
    sweep_dir = write_sweep(tmp_path, default_trials(), name=name, tracking=store.tracking())
    replay_into(MlflowObserver(sweep_dir, plots=False), sweep_dir)
    first = promote(sweep_dir, evaluate=False, keep_all_checkpoints=True).record
    uri = store.uri_for(sweep_dir)
    client = store.client(sweep_dir)
    model = store.model_name

    assert first["mlflow"]["model_version"] == "1" and first["mlflow"]["pending_operations"] == 0
    version = client.get_model_version_by_alias(model, "champion")
    assert str(version.version) == "1"
    assert version.tags["trial_id"] == "t0" and version.tags["epoch"] == "1" and version.tags["sweep"] == name
    assert version.tags["metric"] == "mIoU" and float(version.tags["metric_value"]) == 0.62
    assert version.run_id == first["mlflow"]["run_id"] == client.search_runs(
        [client.get_experiment_by_name(name).experiment_id], "tags.`hpo.trial_id` = 't0'")[0].info.run_id
    downloaded = _download(monkeypatch, uri, f"models:/{model}@champion", tmp_path / "dl1")
    files = [p for p in downloaded.rglob("*.pth")]
    assert [p.name for p in files] == ["model_epoch_001_step_00020.pth"]  # inside the MLflow model's artifacts
    assert files[0].read_bytes() == (sweep_dir / "best" / "model_epoch_001_step_00020.pth").read_bytes()
    assert (downloaded / "MLmodel").is_file()
    parent = client.get_run(first["mlflow"]["parent_run_id"])
    assert parent.data.tags["hpo.promoted.trial_id"] == "t0" and parent.data.metrics["promoted_mIoU"] == 0.62
    assert {"best/best.json", "best/export_spec.yaml"} <= {a.path for a in client.list_artifacts(parent.info.run_id, "best")}

    # Promoting the same thing again is a no-op for the registry.
    assert promote(sweep_dir, evaluate=False, keep_all_checkpoints=True).record["mlflow"]["model_version"] == "1"
    # The sweep is resumed and finds a better trial: the alias moves, the old version stays.
    _add_better_trial(sweep_dir)
    second = promote(sweep_dir, evaluate=False).record
    assert (second["trial_id"], second["epoch"], second["mlflow"]["model_version"]) == ("t9", 2, "2")
    assert str(client.get_model_version_by_alias(model, "champion").version) == "2"
    assert client.get_model_version(model, "1").tags["trial_id"] == "t0"
    moved = _download(monkeypatch, uri, f"models:/{model}@champion", tmp_path / "dl2")
    assert [p.name for p in moved.rglob("*.pth")] == ["model_epoch_002_step_00030.pth"]
    best = json.loads((sweep_dir / "best" / "best.json").read_text())
    assert best["mlflow"]["model_uri"] == f"models:/{model}@champion" and best["trial_id"] == "t9"


def test_registering_a_logged_model_leaves_the_process_tracking_uri_alone(monkeypatch):
    """The registry call is pointed at the sweep's store, and the user's MLFLOW_TRACKING_URI survives it."""
    import os

    from mlflow.tracking._tracking_service import utils

    from hpo.tracking.replay import _process_tracking_uri

    monkeypatch.setattr(utils, "_tracking_uri", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9/users-own")

    class Client:
        tracking_uri = "sqlite:////tmp/the-sweeps-store.db"

    with _process_tracking_uri(Client()):
        assert utils.get_tracking_uri() == Client.tracking_uri
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:9/users-own"
    assert utils.get_tracking_uri() == "http://127.0.0.1:9/users-own"
