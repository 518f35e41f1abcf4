"""The trainer subprocess runner against the fixture trainer: reports, clean stops, every failure class."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo.trials.lifecycle import resume_point
from hpo.trials.runner import TrainerProcess, TrialLaunch, stop_orphaned_trainer
from skillkit.checkpoints import checkpoint_for, list_checkpoints
from skillkit.files import PID_FILE
from skillkit.status import StatusFollower, read_validations
from tests.engine.fixture_skill import FIXTURE_TRAINER, TRAIN_TEMPLATE


def launch(tmp_path: Path, *, epochs: int = 3, sleep_s: float = 0.02, fixture: dict[str, Any] | None = None,
           resume: str = "", env: dict[str, str] | None = None, **kwargs: Any) -> TrainerProcess:
    spec = json.loads(json.dumps(TRAIN_TEMPLATE))
    spec["results_dir"] = str(tmp_path)
    spec["train"]["num_epochs"] = epochs
    spec["train"]["resume_training_checkpoint_path"] = resume
    spec["fixture"].update({"sleep_s": sleep_s, **(fixture or {})})
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    argv = (sys.executable, str(FIXTURE_TRAINER), "train", "-e", str(tmp_path / "spec.yaml"))
    settings = {"stop_grace_s": 5.0, "expected_epochs": epochs, **kwargs}
    process = TrainerProcess(TrialLaunch("t", tmp_path, argv, "mIoU", env=env or {}, **settings))
    process.start()
    return process


def drain(process: TrainerProcess) -> list[int]:
    epochs = []
    while (validation := process.next_validation()) is not None:
        epochs.append(validation.epoch)
    return epochs


def test_full_run_reports_every_epoch_and_succeeds(tmp_path: Path) -> None:
    process = launch(tmp_path, epochs=3)
    assert drain(process) == [0, 1, 2]  # TAO's 0-based epoch index, as in the checkpoint names
    exit = process.exit()
    assert exit.failure is None and exit.succeeded and exit.exit_code == 0 and exit.last_epoch == 2
    assert [c.epoch for c in list_checkpoints(tmp_path)] == [0, 1, 2]
    assert (tmp_path / "train.log").exists() and not (tmp_path / PID_FILE).exists()


@pytest.mark.parametrize("mode,failure_class,exit_code,reason", [
    ("crash", "internal", 1, "fixture crash"),
    ("oom", "oom", 10, "CUDA out of memory"),
    ("data", "data", 6, "annotations.json is missing"),
    ("bad_spec", "spec", 3, "must be > 0"),
    ("kill", "killed", -signal.SIGKILL, "killed by SIGKILL"),
])
def test_failures_are_classified(tmp_path: Path, mode: str, failure_class: str, exit_code: int, reason: str) -> None:
    process = launch(tmp_path, epochs=3, fixture={"fail": mode, "fail_at_epoch": 2})
    epochs = drain(process)
    exit = process.exit()
    assert exit.failure is not None and exit.failure.failure_class == failure_class, exit
    assert exit.exit_code == exit_code and reason in exit.failure.reason
    assert epochs == ([] if mode == "bad_spec" else [0])


def test_hanging_trainer_times_out_and_is_killed_after_grace(tmp_path: Path) -> None:
    started = time.monotonic()
    process = launch(tmp_path, epochs=3, fixture={"fail": "hang", "fail_at_epoch": 2}, timeout_s=1.0, stop_grace_s=0.5)
    assert drain(process) == [0]
    exit = process.exit()
    assert exit.timed_out and exit.failure.failure_class == "timeout" and exit.exit_code == -signal.SIGKILL
    assert time.monotonic() - started < 20


def test_sigterm_stops_cleanly_with_a_checkpoint(tmp_path: Path) -> None:
    process = launch(tmp_path, epochs=50, sleep_s=0.2)
    first = process.next_validation()
    assert first is not None and first.epoch == 0
    exit = process.stop_and_wait()
    assert exit.exit_code == 0 and exit.failure is None and exit.stopped_by_engine
    assert checkpoint_for(tmp_path, 0, first.step) is not None


def test_outside_sigterm_before_the_budget_is_killed_class(tmp_path: Path) -> None:
    process = launch(tmp_path, epochs=50, sleep_s=0.2)
    assert process.next_validation() is not None
    os.kill(process.pid, signal.SIGTERM)
    drain(process)
    exit = process.exit()
    assert exit.exit_code == 0 and exit.failure.failure_class == "killed" and "without being asked" in exit.failure.reason


def test_early_stop_epoch_env_is_a_clean_expected_stop(tmp_path: Path) -> None:
    process = launch(tmp_path, epochs=5, env={"EARLY_STOP_EPOCH": "2"}, expected_epochs=2)
    assert drain(process) == [0, 1]  # EARLY_STOP_EPOCH counts epochs: two of them, indices 0 and 1
    assert process.exit().failure is None


def test_freeze_holds_the_trainer_at_its_epoch(tmp_path: Path) -> None:
    process = launch(tmp_path, epochs=20, sleep_s=0.3)
    assert process.next_validation().epoch == 0
    process.freeze()
    time.sleep(0.8)
    assert (tmp_path / "epochs_run.txt").read_text().split() in (["1"], ["1", "2"])  # at most the epoch in flight
    frozen_epochs = (tmp_path / "epochs_run.txt").read_text().split()
    time.sleep(0.5)
    assert (tmp_path / "epochs_run.txt").read_text().split() == frozen_epochs
    process.kill()
    process.wait()


def test_resume_continues_from_the_last_validated_checkpoint(tmp_path: Path) -> None:
    first = launch(tmp_path, epochs=4, env={"EARLY_STOP_EPOCH": "2"}, expected_epochs=2)
    drain(first)
    point = resume_point(tmp_path, [(v.epoch, v.step) for v in read_validations(tmp_path / "status.json", "mIoU")])
    assert point is not None and point.name == "model_epoch_001_step_00008.pth"
    second = launch(tmp_path, epochs=4, resume=str(point.path))
    assert drain(second) == [2, 3]  # lines of the first run are not reported again
    assert (tmp_path / "epochs_run.txt").read_text().split() == ["1", "2", "3", "4"]


def test_status_follower_hands_out_whole_lines_once(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    follower = StatusFollower(path)
    assert follower.poll() == []
    path.write_text('{"status": "RUNNING", "step": 1}\n{"status": "RUN')
    assert [line.step for line in follower.poll()] == [1]
    with open(path, "a") as handle:
        handle.write('NING", "step": 2}\nnot json\n{"not": "a status line"}\n{"status": "SUCCESS", "step": 3}\n')
    assert [line.step for line in follower.poll()] == [2, 3]
    assert follower.poll() == []
    path.write_text('{"status": "RUNNING", "step": 4}\n')  # rewritten shorter: start over
    assert [line.step for line in follower.poll()] == [4]


def test_orphaned_trainer_is_stopped_by_a_new_driver(tmp_path: Path) -> None:
    # A trainer whose driver died keeps running with its pid file; a new driver stops it gracefully.
    spec = json.loads(json.dumps(TRAIN_TEMPLATE))
    spec.update(results_dir=str(tmp_path))
    spec["train"]["num_epochs"] = 100
    spec["fixture"]["sleep_s"] = 0.2
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    code = (
        "import subprocess, sys, pathlib;"
        f"p = subprocess.Popen([sys.executable, {str(FIXTURE_TRAINER)!r}, 'train', '-e', {str(tmp_path / 'spec.yaml')!r}],"
        " start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
        "from hpo.trials.runner import process_start_time;"
        f"pathlib.Path({str(tmp_path / PID_FILE)!r}).write_text(f'{{p.pid}} {{process_start_time(p.pid)}}')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # the "driver" exits, the trainer lives on
    deadline = time.monotonic() + 20
    while not read_validations(tmp_path / "status.json", "mIoU") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stop_orphaned_trainer(tmp_path, grace_s=10)
    lines = [json.loads(line) for line in (tmp_path / "status.json").read_text().splitlines()]
    assert "Stopped by SIGTERM" in lines[-1]["message"]
    assert not (tmp_path / PID_FILE).exists()
    assert stop_orphaned_trainer(tmp_path, grace_s=1) is False
