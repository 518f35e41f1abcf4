"""A Ray cluster whose nodes share NO filesystem (`ray.storage: s3://...`), on this machine: a head and a worker
node (tests/cluster/ray_support.py), each given its own trial scratch root and data cache through its
environment, and S3 on a local `moto_server`. `hpo run` joins the cluster; trials land on both nodes; the
worker node is killed mid-trial once its trial's first checkpoint is in S3; the trial is restarted on the
head from that checkpoint, fetched from S3 (the head never saw its files); the sweep finishes with every trial
completed, no epoch trained twice, and promotion finds the best checkpoint, which the driver fetched from S3.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from tests.cluster.cluster_support import base_sweep
from tests.cluster.ray_support import cluster_env, lose_node, records, stop_group, two_ray_nodes
from tests.storage.moto_support import MOTO_SERVER, moto_server

HPO = [sys.executable, "-m", "hpo.cli"]
FAKE_SECRET = "hpoClusterFakeSecret/NeverPrinted+Q7w"
BUCKET = "hpo-cluster"


def s3_env(endpoint: str, tmp_path: Path) -> dict[str, str]:
    """The environment every node and the driver get: the endpoint and (fake) credentials, no profile files."""
    env = {k: v for k, v in cluster_env().items()
           if k not in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_PROFILE")}
    return {**env, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "AKIAHPOCLUSTERFAKE01",
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"), "AWS_EC2_METADATA_DISABLED": "true"}


def node_env(base: dict[str, str], root: Path) -> dict[str, str]:
    """A node's own scratch root and data cache (what separate machines would have)."""
    return {**base, "HPO_TRIAL_SCRATCH": str(root / "scratch"), "HPO_DATA_CACHE": str(root / "cache")}


def last_validated(trial_dir: Path) -> int | None:
    """The newest epoch in a trial folder's status.json that has a validation (None before the first)."""
    try:
        lines = [json.loads(line) for line in (trial_dir / "status.json").read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return None
    epochs = [line["epoch"] for line in lines if line.get("kpi") and line.get("status") == "RUNNING"]
    return epochs[-1] if epochs else None


def trainer_is_training(trial_dir: Path) -> bool:
    """Whether the trial's trainer process runs: its trainable freezes it (SIGSTOP) from each validation until
    Ray has saved that epoch's checkpoint and asked for the next epoch."""
    try:
        pid = int((trial_dir / "trainer.pid").read_text().split()[0])
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return False
    return state in ("R", "S", "D")


def stored_keys(s3: Any, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


@pytest.mark.slow
def test_a_cluster_without_a_shared_filesystem_moves_a_lost_nodes_trial_through_s3(tmp_path: Path,
                                                                                   fixture_skill: Path) -> None:
    if not MOTO_SERVER.exists():
        pytest.fail(f"moto_server is needed next to {sys.executable} (the test's S3 server)")
    with moto_server(tmp_path / "moto.log") as endpoint:
        env = s3_env(endpoint, tmp_path)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
        s3.create_bucket(Bucket=BUCKET)
        head_root, worker_root = tmp_path / "head", tmp_path / "worker"
        with two_ray_nodes(node_env(env, head_root), node_env(env, worker_root)) as cluster:
            sweep = base_sweep(fixture_skill, tmp_path / "ws", backend="ray",
                               algorithm={"name": "random", "max_trials": 3, "max_epochs": 4},
                               resources={"cpus_per_trial": 1, "max_concurrent": 2},
                               spec_overrides={"fixture.sleep_s": 2.0},  # an epoch outlasts a checkpoint upload
                               promotion={"enabled": True, "evaluate": False},
                               ray={"address": cluster["address"], "max_failures": 2,
                                    "storage": f"s3://{BUCKET}/sweeps"})
            path = tmp_path / "cluster.yaml"
            path.write_text(yaml.safe_dump(sweep, sort_keys=False))
            sweep_dir = tmp_path / "ws" / "fx"
            head_id, worker_id = cluster["nodes"]["head_node"], cluster["nodes"]["worker_node"]
            driver = subprocess.Popen([*HPO, "run", str(path), "--yes", "--no-live"],
                                      env=node_env(env, tmp_path / "driver"), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, start_new_session=True)
            try:
                deadline = time.monotonic() + 120
                on_worker = None
                while on_worker is None and time.monotonic() < deadline:
                    assert driver.poll() is None, driver.stdout.read()[-3000:]
                    for trial_id, record in records(sweep_dir).items():
                        if record["resources"].get("ray_nodes") != [worker_id] or not record["history"]:
                            continue
                        # Kill mid-epoch: the worker's trainer is training again, so Ray has registered the
                        # checkpoint of its newest validated epoch (in S3) and losing the node loses no epoch.
                        folder = worker_root / "scratch" / "fx" / "trials" / trial_id
                        newest = last_validated(folder)
                        where = record["resources"]["ray_storage"].removeprefix(f"s3://{BUCKET}/")
                        if newest is None or not any(
                                k.startswith(where + "/checkpoint_") and f"/model_epoch_{newest:03d}_" in k
                                for k in stored_keys(s3, where + "/")):
                            continue
                        if last_validated(folder) == newest and trainer_is_training(folder):
                            on_worker = trial_id
                            break
                    time.sleep(0.05)
                assert on_worker, f"no trial validated on the worker node: {records(sweep_dir)}"
                # The nodes share no folder: the head has never seen this trial's files.
                assert not (head_root / "scratch" / "fx" / "trials" / on_worker).exists()
                assert (worker_root / "scratch" / "fx" / "trials" / on_worker / "status.json").is_file()
                lose_node(cluster["worker"])  # mid-trial: raylet, its Ray workers, the trainer, all at once
                output, _ = driver.communicate(timeout=240)
            finally:
                if driver.poll() is None:
                    stop_group(driver)
            assert driver.returncode == 0, output[-3000:]
            status = subprocess.run([*HPO, "status", str(sweep_dir)], env=env, capture_output=True, text=True,
                                    timeout=120)
        stored = stored_keys(s3, "sweeps/fx/")

    assert f"joined the Ray cluster at {cluster['address']}: 2 node(s)" in output
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert summary["counts"] == {"COMPLETED": 3}, summary["counts"]  # nothing lost, nothing replaced
    final = records(sweep_dir)
    assert final[on_worker]["resources"]["ray_nodes"] == [worker_id, head_id]  # moved to the head
    assert any(head_id in r["resources"]["ray_nodes"] for t, r in final.items() if t != on_worker)

    def scratch(root: Path, trial_id: str) -> Path:
        return root / "scratch" / "fx" / "trials" / trial_id

    for trial_id, record in final.items():
        nodes = record["resources"]["ray_nodes"]
        epochs = []
        for root, node in ((worker_root, worker_id), (head_root, head_id)):
            run = scratch(root, trial_id) / "epochs_run.txt"
            assert run.is_file() == (node in nodes), (trial_id, root, nodes)  # files only where it ran
            epochs += run.read_text().split() if run.is_file() else []
        assert epochs == ["1", "2", "3", "4"], (trial_id, epochs)  # each epoch trained once, on whichever node
        # A node keeps no checkpoint of a trial it is done with: they are in S3.
        assert not list(scratch(head_root, trial_id).glob("model_epoch_*")), trial_id
        # The workspace got what the driver reads: status lines, spec and the best epoch's checkpoint only.
        trial_dir = sweep_dir / "trials" / trial_id
        assert [p.name for p in trial_dir.glob("model_epoch_*")] == [record["best"]["checkpoint"]], trial_id
        assert len((trial_dir / "status.json").read_text().splitlines()) >= 6 and (trial_dir / "spec.yaml").is_file()
    launches = [json.loads(line) for line in (scratch(head_root, on_worker) / "launches.jsonl").read_text().splitlines()]
    assert len(launches) == 1 and launches[0]["resume"], launches  # on the head: from the checkpoint S3 had

    # Ray's experiment state and the trials' checkpoints are in S3; promotion found the best checkpoint.
    assert any(k.startswith("sweeps/fx/experiment/experiment_state-") for k in stored), stored[:20]
    assert any(k.endswith(".pth") for k in stored)
    best = summary["best"]
    assert (sweep_dir / best["checkpoint"]).is_file()
    assert json.loads((sweep_dir / "best" / "best.json").read_text())["trial_id"] == best["trial_id"]
    assert status.returncode == 0 and "COMPLETED" in status.stdout, status.stdout + status.stderr
    # Credentials travel through each node's environment only, never through a file or a log.
    leaked = [p for p in [*sweep_dir.rglob("*"), *head_root.rglob("*"), *worker_root.rglob("*")]
              if p.is_file() and FAKE_SECRET.encode() in p.read_bytes()]
    assert FAKE_SECRET not in output and not leaked, leaked
