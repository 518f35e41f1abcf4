"""A Ray cluster of two nodes on this machine whose trials share one workspace path (a shared filesystem;
tests/cluster/ray_support.py starts the nodes): `hpo run` joins it through `ray.address` in the sweep
config, trials land on both nodes, the worker node is killed mid-trial, and its trial is restarted on the head
from its last checkpoint (FailureConfig.max_failures); the sweep finishes with every trial completed, none
lost, and no epoch trained twice. The same without a shared filesystem (`ray.storage: s3://`):
test_ray_cluster_storage.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.cluster_support import base_sweep
from tests.cluster.ray_support import cluster_env, lose_node, records, stop_group, two_ray_nodes

HPO = [sys.executable, "-m", "hpo.cli"]


@pytest.fixture
def two_nodes() -> Iterator[dict[str, Any]]:
    """Head (resource head_node) and worker (resource worker_node), one CPU each, on this machine."""
    env = cluster_env()
    with two_ray_nodes(env, env) as cluster:
        yield cluster


@pytest.mark.slow
def test_sweep_joins_a_two_node_cluster_and_survives_losing_a_node(two_nodes: dict[str, Any], tmp_path: Path,
                                                                   fixture_skill: Path) -> None:
    sweep = base_sweep(fixture_skill, tmp_path / "ws", backend="ray",
                       algorithm={"name": "random", "max_trials": 3, "max_epochs": 4},
                       resources={"cpus_per_trial": 1, "max_concurrent": 2},
                       spec_overrides={"fixture.sleep_s": 1.0},
                       ray={"address": two_nodes["address"], "max_failures": 2})
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    sweep_dir = tmp_path / "ws" / "fx"
    head_id, worker_id = two_nodes["nodes"]["head_node"], two_nodes["nodes"]["worker_node"]
    driver = subprocess.Popen([*HPO, "run", str(path), "--yes", "--no-live"], env=two_nodes["env"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        on_worker = None
        while on_worker is None and time.monotonic() < deadline:
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            for trial_id, record in records(sweep_dir).items():
                if record["resources"].get("ray_nodes") == [worker_id] and len(record["history"]) >= 1:
                    on_worker = trial_id
            time.sleep(0.1)
        assert on_worker, f"no trial validated on the worker node: {records(sweep_dir)}"
        # The node is lost mid-trial, as a machine is: the raylet, its Ray workers and the trainer, all at once.
        # (Killing only `ray start`'s process group left its Ray workers alive for a moment: the driver kept
        # calling the trial's actor directly, and the trial sometimes finished on the "lost" node.)
        lose_node(two_nodes["worker"])
        output, _ = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            stop_group(driver)
    assert driver.returncode == 0, output[-3000:]
    assert f"joined the Ray cluster at {two_nodes['address']}: 2 node(s)" in output
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert summary["counts"] == {"COMPLETED": 3}, summary["counts"]  # nothing lost, nothing replaced
    final = records(sweep_dir)
    assert final[on_worker]["resources"]["ray_nodes"] == [worker_id, head_id]  # moved to the head
    assert any(head_id in r["resources"]["ray_nodes"] for t, r in final.items() if t != on_worker)
    for trial_id in final:
        epochs = (sweep_dir / "trials" / trial_id / "epochs_run.txt").read_text().split()
        assert epochs == ["1", "2", "3", "4"], (trial_id, epochs)  # each epoch trained once
    status = subprocess.run([*HPO, "status", str(sweep_dir)], env=two_nodes["env"], capture_output=True, text=True,
                            timeout=120)
    assert status.returncode == 0 and "COMPLETED" in status.stdout, status.stdout + status.stderr
    launches = [json.loads(line) for line in
                (sweep_dir / "trials" / on_worker / "launches.jsonl").read_text().splitlines()]
    assert len(launches) == 2 and launches[1]["resume"], launches  # restarted from its last checkpoint


def test_the_cluster_doc_shows_the_commands_this_test_runs() -> None:
    """docs/running-on-a-cluster.md: its Ray commands are the ones run above (addresses and sizes aside)."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "running-on-a-cluster.md").read_text()
    for command in ("ray start --head --port=6379 ", "--resources='{\"head_node\": 1}'",
                    "ray start --address=HEAD_IP:6379 ", "--resources='{\"worker_node\": 1}'",
                    "hpo run sweep.yaml --yes", "hpo status /shared/hpo/coco_ray", "hpo resume /shared/hpo/coco_ray",
                    "ray:\n  address: auto", "max_failures: 2"):
        assert command in doc, command
