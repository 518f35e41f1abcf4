"""The driver is SIGKILLed mid-sweep; `hpo resume` finishes the budget with no completed trial re-run and no
reported result lost (Optuna backend, through the real CLI in subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hpo.driver.workspace import read_lock_holder
from skillkit.status.follower import read_validations

HPO = [sys.executable, "-m", "hpo.cli"]


def trial_states(sweep_dir: Path) -> dict[str, str]:
    states = {}
    for path in (sweep_dir / "trials").glob("*/trial.json"):
        try:
            states[path.parent.name] = json.loads(path.read_text())["state"]
        except (json.JSONDecodeError, KeyError):
            continue
    return states


def test_resume_after_sigkill_finishes_without_rerun_or_loss(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    path = write_sweep(algorithm={"name": "tpe", "max_trials": 6, "max_epochs": 3, "n_startup_trials": 2},
                       resources={"max_concurrent": 2}, spec_overrides={"fixture.sleep_s": 0.4})
    sweep_dir = tmp_path / "ws" / "fx"
    env = {**os.environ, "CI": "1"}
    driver = subprocess.Popen([*HPO, "run", str(path), "--no-live"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = trial_states(sweep_dir)
        if list(states.values()).count("COMPLETED") >= 2 and "RUNNING" in states.values():
            break
        assert driver.poll() is None, driver.stderr.read()
        time.sleep(0.05)
    else:
        pytest.fail(f"the sweep never had completed and running trials at once: {trial_states(sweep_dir)}")
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    completed_before = {t for t, s in trial_states(sweep_dir).items() if s == "COMPLETED"}
    interrupted = {t for t, s in trial_states(sweep_dir).items() if s == "RUNNING"}
    assert completed_before and interrupted
    assert read_lock_holder(sweep_dir / "driver.lock") is None  # the dead driver's lock is stale, not held
    runs_before = {t: (sweep_dir / "trials" / t / "epochs_run.txt").read_text() for t in completed_before}

    resumed = subprocess.run([*HPO, "resume", str(tmp_path / "ws"), "--no-live"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert len(summary["trials"]) == 6 and summary["counts"] == {"COMPLETED": 6}, summary["counts"]
    assert summary["status"] == "finished" and summary["best"] is not None
    for trial in summary["trials"]:
        trial_dir = sweep_dir / "trials" / trial["trial_id"]
        epochs = (trial_dir / "epochs_run.txt").read_text().split()
        assert epochs == ["1", "2", "3"], (trial["trial_id"], epochs)  # no epoch trained twice
        written = {v.epoch: v.value for v in read_validations(trial_dir / "status.json", "mIoU")}
        assert {h["epoch"]: h["kpi"]["mIoU"] for h in trial["history"]} == written  # nothing lost
    for trial_id, before in runs_before.items():
        assert (sweep_dir / "trials" / trial_id / "epochs_run.txt").read_text() == before  # not re-run
    for trial_id in interrupted:
        starts = (sweep_dir / "trials" / trial_id / "status.json").read_text().count('"STARTED"')
        assert starts >= 1
    assert f"took over the lock of driver pid {driver.pid}, which died without releasing it" in resumed.stderr


def test_two_drivers_never_share_a_workspace(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    path = write_sweep(algorithm={"name": "random", "max_trials": 2, "max_epochs": 2},
                       spec_overrides={"fixture.sleep_s": 1.0})
    env = {**os.environ, "CI": "1"}
    first = subprocess.Popen([*HPO, "run", str(path), "--no-live"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        sweep_dir = tmp_path / "ws" / "fx"
        deadline = time.monotonic() + 60
        while read_lock_holder(sweep_dir / "driver.lock") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run([*HPO, "resume", str(sweep_dir), "--no-live"], env=env, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 7
        assert f"in use by a running driver (pid {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)  # a driver stopped by SIGTERM pauses its trials and exits 130
        assert first.wait(timeout=120) == 130


@pytest.mark.slow
def test_ray_resume_after_sigkill_restores_the_experiment(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    """Ray backend: the driver (which started its own local Ray) is SIGKILLed; `hpo resume` restores the Ray
    experiment; every trial ends with its epochs trained once and every written validation recorded."""
    pytest.importorskip("ray")
    path = write_sweep(backend="ray", algorithm={"name": "asha", "max_trials": 4, "max_epochs": 3, "reduction_factor": 2},
                       resources={"max_concurrent": 2}, spec_overrides={"fixture.sleep_s": 1.0})
    sweep_dir = tmp_path / "ws" / "fx"
    env = {**os.environ, "CI": "1", "RAY_ADDRESS": "", "RAY_NODE_IP_ADDRESS": "127.0.0.1"}
    driver = subprocess.Popen([*HPO, "run", str(path), "--no-live"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        states = trial_states(sweep_dir)
        done = [s for s in states.values() if s in ("COMPLETED", "PRUNED")]
        if done and "RUNNING" in states.values():
            break
        assert driver.poll() is None
        time.sleep(0.1)
    else:
        pytest.fail(f"no finished and running trials at once: {trial_states(sweep_dir)}")
    finished_before = {t: s for t, s in trial_states(sweep_dir).items() if s in ("COMPLETED", "PRUNED")}
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    time.sleep(3)  # Ray's own processes notice their driver is gone
    resumed = subprocess.run([*HPO, "resume", str(sweep_dir), "--no-live"], env=env, capture_output=True, text=True,
                             timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((sweep_dir / "summary.json").read_text())
    # A trial started within Ray's last ~second before the kill is unknown to the restored experiment; the
    # engine recorded it before Ray launched it, so it is re-attached and continued: nothing is lost or replaced.
    assert len(summary["trials"]) == 4 and "FAILED" not in summary["counts"], summary["counts"]
    assert sorted(t["number"] for t in summary["trials"]) == [0, 1, 2, 3]
    for trial in summary["trials"]:
        trial_dir = sweep_dir / "trials" / trial["trial_id"]
        epochs = (trial_dir / "epochs_run.txt").read_text().split()
        assert len(epochs) == len(set(epochs)), (trial["trial_id"], epochs)
        written = {v.epoch: v.value for v in read_validations(trial_dir / "status.json", "mIoU")}
        assert {h["epoch"]: h["kpi"]["mIoU"] for h in trial["history"]} == written
        if trial["trial_id"] in finished_before:
            assert trial["state"] == finished_before[trial["trial_id"]]
            assert (trial_dir / "status.json").read_text().count('"STARTED"') == 1  # not re-run
