"""A Ray cluster of two nodes on this machine for the cluster tests: `ray start --head` and `ray start --address`,
each with its own node resource (head_node / worker_node), its own environment and, for the head, its own Ray
folder and port, so no other Ray on this machine finds or joins it. On Linux Ray swaps a loopback address
for the machine's own, so the nodes are started on that address, as `ray start` on two hosts would be.
Both are stopped by their own process groups (never a global `ray stop`).
"""

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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

RAY = Path(sys.executable).with_name("ray")
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


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, theirs, ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def lose_node(process: subprocess.Popen) -> None:
    """The node is lost, as a machine is: every process of it (`ray start`, the raylet, its Ray workers and
    the trainers they started, whatever process group each is in) is frozen at once, then killed."""
    pids = [process.pid, *descendants(process.pid)]
    for signum in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
    stop_group(process)


@contextmanager
def two_ray_nodes(head_env: Mapping[str, str], worker_env: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """Head (1 CPU, resource head_node) and worker (1 CPU, resource worker_node), each `ray start --block` in
    its own process group with its own environment (its trial processes inherit it). Yields {address, env (the
    head's), worker (its Popen), nodes ({node resource: node id})}. The head keeps its files in a Ray folder
    of its own (a short path: Ray's sockets live there)."""
    port, ip = free_port(), node_ip()
    temp_dir = Path(tempfile.mkdtemp(prefix="rayc", dir="/tmp"))
    common = [f"--node-ip-address={ip}", "--num-cpus=1", "--disable-usage-stats", "--block"]
    head = subprocess.Popen(
        [str(RAY), "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir}",
         '--resources={"head_node": 1}', *common],
        env=dict(head_env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"{ip}:{port}"
    worker = None
    try:
        wait_for_nodes(address, 1, head_env)
        worker = subprocess.Popen(
            [str(RAY), "start", f"--address={address}", '--resources={"worker_node": 1}', *common],
            env=dict(worker_env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        nodes = wait_for_nodes(address, 2, head_env)
        yield {"address": address, "env": dict(head_env), "worker": worker, "nodes": nodes}
    finally:
        if worker is not None and worker.poll() is None:
            stop_group(worker)
        stop_group(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for_nodes(address: str, count: int, env: Mapping[str, str], timeout_s: float = 90) -> dict[str, str]:
    """{node resource name: node id} once `count` nodes are alive (asked through a short-lived driver)."""
    probe = (f"import json, ray; ray.init(address={address!r}, log_to_driver=False); "
             "print(json.dumps([[n['NodeID'], sorted(n['Resources'])] for n in ray.nodes() if n['Alive']]))")
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        done = subprocess.run([sys.executable, "-c", probe], env=dict(env), capture_output=True, text=True, timeout=60)
        last = done.stderr[-1500:]
        if done.returncode == 0:
            nodes = json.loads(done.stdout.strip().splitlines()[-1])
            if len(nodes) >= count:
                return {next(r for r in resources if r.endswith("_node")): node for node, resources in nodes}
        time.sleep(1)
    pytest.fail(f"the Ray cluster at {address} never had {count} nodes alive: {last}")


def records(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """The trial.json records a running sweep has written so far (one being rewritten is skipped)."""
    found = {}
    for path in (sweep_dir / "trials").glob("*/trial.json"):
        try:
            found[path.parent.name] = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
    return found
