"""A multi-GPU trial through the real engine path, on CPU: `resources.gpus_per_trial: 2` makes the engine set
the skill's GPU keys (`train.num_gpus: 2`, `train.gpu_ids: [0, 1]`), and with `MASK2FORMER_DDP_ON_CPU=1`
the real trainer runs them as two DDP processes over gloo. One DDP trial is paused by a SIGTERM to the
driver and resumed by `hpo resume`; another is pruned by successive halving. Every stop must reach every
process of the trial (both ranks and their data-loader workers) and leave one status line per event.

The sweep's metric is the learning rate each validation line reports, and its direction is chosen from the
plan so that the first trial's lr is the better one: which trial the successive-halving rule prunes is then
known in advance (the second), whatever order the grid visits its two points in; the trials still train a
real tiny Mask2Former. Slow: three trainer starts of two processes each, two to five minutes on two busy
cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HPO = Path(sys.executable).parent / "hpo"
pytestmark = pytest.mark.slow


def _events(trial_dir: Path) -> list[dict[str, Any]]:
    path = trial_dir / "status.json"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _wait_for(predicate: Any, *, timeout_s: float, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the driver exited ({proc.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "HPO_SKILL_DIR")}
    env["CI"] = "1"
    return env


def _first_planned_lr(config: Path) -> float:
    """The lr of the first trial, as `hpo plan` shows it (the grid's visiting order is the sampler's)."""
    from hpo.driver.context import prepare_sweep
    from hpo.driver.plan import make_plan
    from hpo.sweep.config import load_sweep_config

    plan = make_plan(prepare_sweep(load_sweep_config(config)))
    assert plan.batch_is_exact and len(plan.batch) == 1
    lr = plan.batch[0]["train.optim.lr"]
    assert lr in (pytest.approx(0.0001), pytest.approx(0.001)), lr
    return 0.001 if lr == pytest.approx(0.001) else 0.0001


def test_ddp_trials_are_paused_resumed_and_pruned_through_the_engine(tmp_path: Path) -> None:
    from mask2former.data.synth import write_synthetic_splits

    data = tmp_path / "data"
    write_synthetic_splits(data, fmt="coco_panoptic", num_train=4, num_val=2, seed=0, size=64)
    sweep = {
        "name": "ddp", "skill_dir": str(REPO), "base_spec": str(REPO / "configs" / "quickstart_spec.yaml"),
        "datasets": {"train": str(data / "train"), "eval": str(data / "val")},
        "workspace": str(tmp_path / "ws"), "backend": "optuna",
        "algorithm": {"name": "grid", "grid_points": 2, "pruner": "successive_halving", "max_trials": 2,
                      "max_epochs": 3, "grace_period": 1, "reduction_factor": 2},
        "metric": "lr", "direction": "maximize",
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 2, "gpus": 2, "max_concurrent": 1},
        "search_space": {"parameters": ["train.optim.lr"],
                         "custom_param_ranges": {"train.optim.lr": {"min": 0.0001, "max": 0.001}}},
        # One data-loader worker per rank: the group-wide SIGTERM must not turn into a worker crash.
        "spec_overrides": {"dataset.train.num_workers": 1, "train.use_distributed_sampler": True},
        "trial": {"env": {"MASK2FORMER_DDP_ON_CPU": "1"}, "stop_grace_s": 90, "timeout_s": 900},
        "tracking": {"enabled": False}, "promotion": {"enabled": False}, "seed": 3,
    }
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(sweep, sort_keys=False))
    first_lr = _first_planned_lr(config)
    sweep["direction"] = "maximize" if first_lr == 0.001 else "minimize"
    config.write_text(yaml.safe_dump(sweep, sort_keys=False))
    sweep_dir = tmp_path / "ws" / "ddp"
    first = sweep_dir / "trials" / "trial_0000"
    log = open(tmp_path / "driver.log", "wb")

    # Run 1: SIGTERM the driver once the first DDP trial has validated its first epoch (TAO's epoch 0) -> the
    # trial is paused.
    driver = subprocess.Popen([str(HPO), "run", str(config), "--yes", "--no-live"], env=_env(), stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(lambda: any(e["status"] == "RUNNING" and e.get("epoch") == 0 for e in _events(first)),
                  timeout_s=400, proc=driver, what="trial_0000 to validate epoch 0")
        trainer_group = int((first / "trainer.pid").read_text().split()[0])
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=180) == 130, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert not _group_alive(trainer_group), "a rank or data-loader worker of the paused trial survived"
    paused = json.loads((first / "trial.json").read_text())
    assert paused["state"] == "PAUSED"
    stop_line = _events(first)[-1]
    assert stop_line["status"] == "SUCCESS" and "SIGTERM" in stop_line["message"]

    # Run 2: resume -> trial_0000 continues from its checkpoint; trial_0001 (lower lr) is pruned at epoch 1.
    resumed = subprocess.run([str(HPO), "resume", str(sweep_dir), "--no-live"], env=_env(), capture_output=True,
                             text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads((sweep_dir / "summary.json").read_text())
    states = {t["trial_id"]: t for t in summary["trials"]}
    lrs = {trial_id: t["params"]["train.optim.lr"] for trial_id, t in states.items()}
    assert lrs["trial_0000"] == pytest.approx(first_lr) and lrs["trial_0001"] != pytest.approx(first_lr), lrs
    assert states["trial_0000"]["state"] == "COMPLETED"
    # Pruned at its first rung (epoch 1). The stop lands at the next optimizer step on every rank; with one
    # step per epoch a slow engine poll may let epoch 2 finish first, never the whole budget.
    assert states["trial_0001"]["state"] == "PRUNED"
    assert states["trial_0001"]["history"][0]["epoch"] == 0 and len(states["trial_0001"]["history"]) < 3

    for trial_id in ("trial_0000", "trial_0001"):
        trial_dir = sweep_dir / "trials" / trial_id
        spec = yaml.safe_load((trial_dir / "spec.yaml").read_text())
        assert spec["train"]["num_gpus"] == 2 and spec["train"]["gpu_ids"] == [0, 1]
        events = _events(trial_dir)
        started = [e for e in events if e["status"] == "STARTED"]
        assert started and all("2 CPU processes run under DDP" in e["message"] for e in started)
        # One writer: each validated epoch appears once, and each run of the trainer ends with one line.
        validated = Counter(e["epoch"] for e in events if e["status"] == "RUNNING" and "mIoU" in (e.get("kpi") or {}))
        assert validated and set(validated.values()) == {1}, validated
        assert sum(e["status"] in ("SUCCESS", "FAILURE") for e in events) == len(started)
        assert not any(e["status"] == "FAILURE" for e in events)
        # Two ranks share 4 images at batch 2: one optimizer step per epoch (a single process takes two). The
        # name's epoch is TAO's index of the epoch in progress: step = epoch + 1 once it ended, = epoch when a
        # SIGTERM stopped it before its step.
        for checkpoint in trial_dir.glob("model_epoch_*_step_*.pth"):
            epoch, step = (int(part) for part in checkpoint.stem.split("_")[2::2])
            assert step - epoch in (0, 1), checkpoint.name
    resumed_start = [e for e in _events(first) if e["status"] == "STARTED"][1]
    assert resumed_start["message"].startswith("Resuming training at epoch ") and resumed_start["epoch"] is None
    assert int(resumed_start["message"].split()[4]) >= 1  # "Resuming training at epoch N (step S) (...)"
    pruned_stop = _events(sweep_dir / "trials" / "trial_0001")[-1]
    assert pruned_stop["status"] == "SUCCESS" and "SIGTERM" in pruned_stop["message"]
