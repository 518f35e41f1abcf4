"""A Ray cluster of two nodes on this machine (`ray start --head` and `ray start --address`, each with its own
node resource and its own Ray folder; on Linux Ray swaps a loopback address for the machine's own, so the
nodes are started on that address, as `ray start` on two hosts would be): `hpo run` joins it through `ray.address` in the sweep config, trials land on
both nodes, the worker node is killed mid-trial, and its trial is restarted on the head from its last
checkpoint (FailureConfig.max_failures); the sweep finishes with every trial completed, none lost, and no
epoch trained twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.cluster_support import base_sweep

RAY = Path(sys.executable).with_name("ray")
HPO = [sys.executable, "-m", "hpo.cli"]
# Fast failure detection for the test cluster (Ray reads RAY_<system config key> from the environment).
TEST_CLUSTER_ENV = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4",
                    "RAY_health_check_initial_delay_ms": "0",
                    # A throw-away cluster on loopback: no token to hand around (a real one keeps Ray's token
                    # authentication, see docs/running-on-a-cluster.md).
                    "RAY_AUTH_MODE": "disabled"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def node_ip() -> str:
    """The address Ray gives this machine (what it would turn 127.0.0.1 into)."""
    from ray._private.services import get_node_ip_address

    return get_node_ip_address()


def cluster_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, **TEST_CLUSTER_ENV, "RAY_USAGE_STATS_ENABLED": "0", "CI": "1"}


def stop_group(process: subprocess.Popen, signum: int = signal.SIGKILL) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


@pytest.fixture
def two_nodes() -> Iterator[dict[str, Any]]:
    """Head (1 CPU, resource head_node) and worker (1 CPU, resource worker_node), each `ray start --block`
    in its own process group. The head keeps its files in a Ray folder of its own (a short path: Ray's
    sockets live there), so no other Ray on this machine finds or joins this cluster."""
    port, ip = free_port(), node_ip()
    env = cluster_env()
    temp_dir = Path(tempfile.mkdtemp(prefix="rayc", dir="/tmp"))
    common = [f"--node-ip-address={ip}", "--num-cpus=1", "--disable-usage-stats", "--block"]
    head = subprocess.Popen(
        [str(RAY), "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir}",
         '--resources={"head_node": 1}', *common],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"{ip}:{port}"
    worker = None
    try:
        wait_for_nodes(address, 1, env)
        worker = subprocess.Popen(
            [str(RAY), "start", f"--address={address}", '--resources={"worker_node": 1}', *common],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        nodes = wait_for_nodes(address, 2, env)
        yield {"address": address, "env": env, "worker": worker, "nodes": nodes}
    finally:
        if worker is not None and worker.poll() is None:
            stop_group(worker)
        stop_group(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for_nodes(address: str, count: int, env: dict[str, str], timeout_s: float = 90) -> dict[str, str]:
    """{node resource name: node id} once `count` nodes are alive (asked through a short-lived driver)."""
    probe = (f"import json, ray; ray.init(address={address!r}, log_to_driver=False); "
             "print(json.dumps([[n['NodeID'], sorted(n['Resources'])] for n in ray.nodes() if n['Alive']]))")
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
        last = done.stderr[-1500:]
        if done.returncode == 0:
            nodes = json.loads(done.stdout.strip().splitlines()[-1])
            if len(nodes) >= count:
                return {next(r for r in resources if r.endswith("_node")): node for node, resources in nodes}
        time.sleep(1)
    pytest.fail(f"the Ray cluster at {address} never had {count} nodes alive: {last}")


def records(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for path in (sweep_dir / "trials").glob("*/trial.json"):
        try:
            found[path.parent.name] = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
    return found


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
        stop_group(two_nodes["worker"])  # the node is lost mid-trial: raylet, its workers, the trainer
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
