"""Other libraries on our S3 endpoint: Ray Tune experiment storage (pyarrow) and MLflow artifacts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpo.storage import Storage, mlflow_s3_environment, pyarrow_s3_filesystem, ray_storage_path
from skillkit.errors import StorageError


def _all_object_bytes(prefix: str, tmp_path: Path) -> bytes:
    storage = Storage()
    blobs = []
    for index, info in enumerate(storage.list(prefix)):
        target = tmp_path / "scan" / str(index)
        storage.download(info.uri, target)
        blobs.append(target.read_bytes())
    return b"\n".join(blobs)


def test_pyarrow_filesystem_uses_the_endpoint(bucket: str, moto_env: str) -> None:
    fs = pyarrow_s3_filesystem()
    with fs.open_output_stream(f"{bucket}/arrow/hello.txt") as stream:
        stream.write(b"from pyarrow")
    assert Storage().stat(f"s3://{bucket}/arrow/hello.txt").size == 12
    assert ray_storage_path(f"s3://{bucket}/ray/") == f"{bucket}/ray"
    with pytest.raises(StorageError, match="is not an http"):
        pyarrow_s3_filesystem(endpoint_url="127.0.0.1:9000")


@pytest.mark.slow  # Ray start-up dominates (~15-35 s on 2 busy cores)
def test_ray_tune_writes_its_experiment_to_s3(bucket: str, tmp_path: Path, fake_secret: str, fake_access_key: str) -> None:
    ray = pytest.importorskip("ray")
    from ray import tune

    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    try:
        def trainable(config: dict) -> None:
            tune.report({"score": config["x"] * 2})

        storage_path = ray_storage_path(f"s3://{bucket}/ray")
        fs = pyarrow_s3_filesystem()
        tuner = tune.Tuner(
            trainable,
            param_space={"x": tune.grid_search([1, 2])},
            tune_config=tune.TuneConfig(metric="score", mode="max"),
            run_config=tune.RunConfig(name="exp", storage_path=storage_path, storage_filesystem=fs, verbose=0),
        )
        results = tuner.fit()
        assert results.get_best_result().metrics["score"] == 4
        assert tune.Tuner.can_restore(f"{storage_path}/exp", storage_filesystem=fs)
    finally:
        if started:
            ray.shutdown()
    names = [info.uri.rsplit("/", 1)[1] for info in Storage().list(f"s3://{bucket}/ray/exp")]
    assert "tuner.pkl" in names
    assert any(name.startswith("experiment_state") for name in names)
    assert names.count("result.json") == 2
    everything = _all_object_bytes(f"s3://{bucket}/ray/exp", tmp_path)
    assert fake_secret.encode() not in everything and fake_access_key.encode() not in everything


def test_mlflow_artifacts_on_s3(bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                fake_secret: str, fake_access_key: str) -> None:
    mlflow = pytest.importorskip("mlflow")
    environment = mlflow_s3_environment()
    assert environment == {"MLFLOW_S3_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"]}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # Through the environment and the module global, both restored by monkeypatch: an explicit
    # set_tracking_uri(previous) would pin the default URI for every later test in the process.
    from mlflow.tracking._tracking_service import utils as tracking_utils
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment("s3-artifacts", artifact_location=f"s3://{bucket}/mlflow")
    notes = tmp_path / "notes.txt"
    notes.write_text("best trial: t0003\n")
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_param("lr", 0.001)
        mlflow.log_artifact(str(notes), artifact_path="reports")
    back = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="reports/notes.txt", dst_path=str(tmp_path / "back")
    )
    assert Path(back).read_text() == "best trial: t0003\n"
    stored = Storage().list(f"s3://{bucket}/mlflow")
    assert [info.uri.rsplit("/", 2)[-2:] for info in stored] == [["reports", "notes.txt"]]
    data = mlflow.get_run(run.info.run_id).data
    recorded = repr((data.params, data.tags, data.metrics, mlflow.get_experiment(experiment).artifact_location))
    assert fake_secret not in recorded and fake_access_key not in recorded


def test_mlflow_environment_is_empty_for_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert mlflow_s3_environment() == {}
    assert mlflow_s3_environment(endpoint_url="http://minio:9000") == {"MLFLOW_S3_ENDPOINT_URL": "http://minio:9000"}
