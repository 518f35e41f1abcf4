"""Secrets (encryption_key, AWS keys, passwords, tokens) never reach MLflow: params, tags, artifacts, specs,
logs, the registered checkpoint, nor the local journal that feeds them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hpo.tracking import MlflowObserver
from skillkit.redaction import REDACTED, Redactor, is_secret_key
from tests.tracking.synthetic_sweep import default_trials, replay_into, write_sweep

ENCRYPTION_KEY = "tlt-enc-Key-9f8e7d6c"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
DB_PASSWORD = "s3cretpassw0rd"
SECRETS = (ENCRYPTION_KEY, AWS_SECRET, AWS_KEY_ID, DB_PASSWORD)


@pytest.mark.parametrize("name, secret", [
    ("encryption_key", True), ("model.encryption_key", True), ("AWS_SECRET_ACCESS_KEY", True),
    ("aws_access_key_id", True), ("trial.env.AWS_SESSION_TOKEN", True), ("db_password", True),
    ("api_key", True), ("client_secret", True), ("hf_token", True), ("train.optim.lr", False),
    ("model.sem_seg_head.num_classes", False), ("dataset.label_map", False), ("monitor_key", False),
    ("max_tokens_per_batch", False),
])
def test_secret_key_names(name, secret):
    assert is_secret_key(name) is secret


def test_redactor_masks_values_by_key_pattern_uri_and_memory():
    redactor = Redactor(include_environment=False)
    data = {"encryption_key": ENCRYPTION_KEY, "empty_token": "", "train": {"lr": 0.1},
            "storage": f"postgresql://hpo:{DB_PASSWORD}@db:5432/optuna", "note": f"id {AWS_KEY_ID} here",
            "nested": [{"aws_secret_access_key": AWS_SECRET}]}
    clean = redactor.data(data)
    assert clean["encryption_key"] == REDACTED and clean["empty_token"] == ""
    assert clean["train"] == {"lr": 0.1}
    assert clean["storage"] == f"postgresql://hpo:{REDACTED}@db:5432/optuna"
    assert clean["note"] == f"id {REDACTED} here"
    assert clean["nested"][0]["aws_secret_access_key"] == REDACTED
    # remembered values are masked wherever they show up later, e.g. echoed in a log line
    assert redactor.text(f"loading with key {ENCRYPTION_KEY}!") == f"loading with key {REDACTED}!"
    assert redactor.text("password: hunter22 and token=abc123") == f"password: {REDACTED} and token={REDACTED}"
    assert redactor.mapping({"aws_secret_access_key": "x" * 8, "lr": 1}) == {"aws_secret_access_key": REDACTED, "lr": 1}
    assert data["encryption_key"] == ENCRYPTION_KEY  # input untouched


def test_redactor_remembers_environment_credentials(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    assert AWS_SECRET not in Redactor().text(f"s3 signing with {AWS_SECRET}")


def _write_torch_checkpoint(path: Path, spec: dict) -> None:
    import torch

    torch.save({"model": {"weight": torch.arange(4.0)}, "epoch": 2, "global_step": 20, "spec": spec}, path)


def test_no_secret_reaches_mlflow_or_the_journal(tmp_path, migrated_sqlite_db, monkeypatch):
    import yaml

    from hpo.promotion import promote

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    (tmp_path / "sweep_s").mkdir()
    shutil.copyfile(migrated_sqlite_db, tmp_path / "sweep_s" / "mlflow.db")
    sweep_dir = write_sweep(
        tmp_path, default_trials(), name="sweep_s", encryption_key=ENCRYPTION_KEY, tracking={"retry_interval_s": 0},
        extra_config={"trial": {"env": {"AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_ACCESS_KEY_ID": AWS_KEY_ID}}},
    )
    with open(sweep_dir / "trials" / "t0" / "train.log", "a") as log:
        log.write(f"s3 client: key id {AWS_KEY_ID}, secret {AWS_SECRET}\n")
    spec = yaml.safe_load((sweep_dir / "trials" / "t0" / "spec.yaml").read_text())
    promoted_source = sweep_dir / "trials" / "t0" / "model_epoch_001_step_00020.pth"
    _write_torch_checkpoint(promoted_source, spec)
    assert ENCRYPTION_KEY.encode() in promoted_source.read_bytes()

    observer = MlflowObserver(sweep_dir, plots=False)
    replay_into(observer, sweep_dir)
    result = promote(sweep_dir, evaluate=False)
    assert result.record["mlflow"]["model_version"] == "1"

    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{sweep_dir / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("sweep_s")
    texts = []
    download = tmp_path / "downloaded"
    for run in client.search_runs([experiment.experiment_id]):
        texts += [json.dumps(run.data.params), json.dumps(run.data.tags), json.dumps(list(run.data.metrics))]
        client.download_artifacts(run.info.run_id, "", str(download / run.info.run_id))
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)  # MLflow resolves models:/ URIs with the process-wide URIs
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    registered = Path(mlflow.artifacts.download_artifacts("models:/mask2former@champion", dst_path=str(tmp_path / "reg"),
                                                          tracking_uri=uri, registry_uri=uri))
    downloaded = [p for p in download.rglob("*") if p.is_file()] + [p for p in registered.rglob("*") if p.is_file()]
    assert any(p.name == "spec.yaml" for p in downloaded) and any(p.name == "train.log" for p in downloaded)
    assert any(p.name == "export_spec.yaml" for p in downloaded)
    journal_files = [p for p in (sweep_dir / "tracking").rglob("*") if p.is_file()]
    blobs = b"".join(p.read_bytes() for p in downloaded + journal_files) + "".join(texts).encode()
    for secret in SECRETS:
        assert secret.encode() not in blobs, secret
    assert REDACTED.encode() in blobs

    # The registered copy is redacted but still a loadable checkpoint; the local handoff is untouched.
    import torch

    registered_ckpt = next(p for p in registered.rglob("*.pth"))
    loaded = torch.load(registered_ckpt, map_location="cpu", weights_only=False)
    assert loaded["spec"]["encryption_key"] == REDACTED and loaded["epoch"] == 2
    assert torch.equal(loaded["model"]["weight"], torch.arange(4.0))
    assert (result.best_dir / promoted_source.name).read_bytes() == promoted_source.read_bytes()
    assert yaml.safe_load((result.best_dir / "train_spec.yaml").read_text())["encryption_key"] == ENCRYPTION_KEY
