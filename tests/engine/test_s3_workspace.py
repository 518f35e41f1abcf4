"""A sweep whose workspace is an s3:// prefix: mirrored while it runs, resumed on a machine with nothing local."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "HPO_WORKSPACE_CACHE": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="hpo-test")
    try:
        yield "hpo-test"
    finally:
        server.stop()


def test_s3_workspace_is_mirrored_and_resumable_from_scratch(write_sweep: Callable[..., Path], tmp_path: Path,
                                                             s3_bucket: str) -> None:
    from hpo.driver.runner import resume_sweep, run_sweep

    remote = f"s3://{s3_bucket}/sweeps"
    path = write_sweep(workspace=remote, algorithm={"name": "random", "max_trials": 2, "max_epochs": 3,
                                                    "time_budget_s": 1.0},
                       spec_overrides={"fixture.sleep_s": 0.6})
    first = run_sweep(path, use_default_observers=False)
    assert first["stop_reason"] == "time_budget"
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="sweeps/fx/")["Contents"]}
    assert {"sweeps/fx/sweep.yaml", "sweeps/fx/summary.json", "sweeps/fx/state/optuna.db"} <= keys
    assert any(k.endswith("/trial.json") for k in keys) and any(k.endswith(".pth") for k in keys)
    shutil.rmtree(tmp_path / "cache")  # another machine: nothing local

    summary = resume_sweep(remote, name="fx", use_default_observers=False, time_budget_s=0)
    assert summary["counts"] == {"COMPLETED": 2}
    remote_summary = boto3.client("s3").get_object(Bucket=s3_bucket, Key="sweeps/fx/summary.json")["Body"].read()
    assert json.loads(remote_summary)["counts"] == {"COMPLETED": 2}
