"""`hpo plan`, `hpo run` (never blocking without a terminal), `hpo status`, and the plan's estimates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hpo.driver.context import prepare_sweep
from hpo.driver.plan import expected_epochs, make_plan, successive_halving_epochs, write_plan
from hpo.sweep.config import AlgorithmConfig, load_sweep_config


def hpo(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpo.cli", *args], capture_output=True, text=True, timeout=300,
                          input=stdin, env={**os.environ, "COLUMNS": "200"})


def test_plan_writes_first_batch_specs_and_the_batch_runs_first(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    path = write_sweep(algorithm={"name": "tpe", "max_trials": 3, "max_epochs": 2, "n_startup_trials": 2})
    done = hpo("plan", str(path), "--probe")
    assert done.returncode == 0, done.stderr
    for text in ("Search space (4 parameters)", "train.optim.lr", "[1e-05, 0.1]", "{relu, gelu, silu}",
                 "First batch (2 trials)", "3 trials x up to 2 epochs, 2 at a time", "Metric: mIoU (maximize)",
                 "Estimated wall time", "probe: 2 runs at once of one epoch of the base spec"):
        assert text in done.stdout, (text, done.stdout)
    plan = json.loads((tmp_path / "ws" / "fx" / "plan" / "plan.json").read_text())
    assert plan["seconds_per_epoch"] > 0 and plan["estimated_wall_s"] > 0
    specs = sorted((tmp_path / "ws" / "fx" / "plan").glob("trial_*.yaml"))
    assert len(specs) == 2
    first_spec = yaml.safe_load(specs[0].read_text())
    assert first_spec["train"]["num_epochs"] == 2
    assert first_spec["train"]["optim"]["lr"] == plan["first_batch"][0]["train.optim.lr"]

    run = hpo("run", str(path), "--no-live")  # stdin is not a terminal: no question, no blocking
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "ws" / "fx" / "summary.json").read_text())
    ran_first = [t["params"] for t in summary["trials"][:2]]
    for planned, ran in zip(plan["first_batch"], ran_first):
        assert ran == pytest.approx(planned)

    status = hpo("status", str(tmp_path / "ws"))
    assert status.returncode == 0 and "no driver running" in status.stdout and "trial_0002" in status.stdout
    assert "best: trial_" in status.stdout
    as_json = json.loads(hpo("status", str(tmp_path / "ws"), "--json").stdout)
    assert len(as_json["trials"]) == 3 and as_json["driver"] is None

    again = hpo("run", str(path), "--yes")
    assert again.returncode == 7 and "already holds a sweep with 3 trial(s); continue it with `hpo resume" in again.stderr


def test_cli_errors_are_one_paragraph(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nalgorithm: {name: asha, max_trails: 3}\n")
    done = hpo("plan", str(bad))
    assert done.returncode == 7
    assert done.stderr.startswith("error: sweep config") and "Did you mean 'max_trials'?" in done.stderr
    assert "Traceback" not in done.stderr
    missing = hpo("status", str(tmp_path / "nothing"))
    assert missing.returncode == 7 and "neither a sweep folder" in missing.stderr


def test_every_trial_failing_exits_nonzero_with_the_reason(write_sweep: Callable[..., Path]) -> None:
    path = write_sweep(algorithm={"name": "random", "max_trials": 9, "max_epochs": 2},
                       resources={"max_concurrent": 1}, spec_overrides={"fixture.fail": "crash"})
    done = hpo("run", str(path), "--yes", "--no-live")
    assert done.returncode == 9
    assert "error: the sweep stopped early: all 3 trials so far failed" in done.stderr and "fixture crash" in done.stderr


def test_expected_epochs_follow_the_scheduler() -> None:
    assert successive_halving_epochs(1, 3, 9) == pytest.approx(1 + 2 / 3 + 6 / 9)
    base = dict(max_trials=10, max_epochs=9, grace_period=1, reduction_factor=3)
    assert expected_epochs(AlgorithmConfig(name="tpe", sampler="tpe", scheduler="none", **base), 9) == 9
    asha = expected_epochs(AlgorithmConfig(name="asha", sampler="random", scheduler="asha", **base), 9)
    hyperband = expected_epochs(AlgorithmConfig(name="hyperband", sampler="random", scheduler="hyperband", **base), 9)
    assert asha < hyperband < 9


def test_plan_uses_trial_history_when_there_is_one(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    from hpo.driver.runner import run_sweep

    path = write_sweep(algorithm={"name": "random", "max_trials": 2, "max_epochs": 2})
    run_sweep(path)
    ctx = prepare_sweep(load_sweep_config(path))
    plan = make_plan(ctx)
    assert plan.timing.source.startswith("reusing this sweep's history: median of 4 epochs") and plan.estimated_wall_s is not None
    write_plan(plan)
    assert (tmp_path / "ws" / "fx" / "plan" / "plan.json").is_file()


def test_live_table_renders_trials_on_a_terminal(write_sweep: Callable[..., Path]) -> None:
    from rich.console import Console

    from hpo.driver.live import LiveTable
    from hpo.driver.runner import run_sweep

    console = Console(record=True, force_terminal=True, width=160)
    summary = run_sweep(write_sweep(algorithm={"name": "random", "max_trials": 2, "max_epochs": 2}),
                        observers=[LiveTable(console)])
    text = console.export_text()
    for column in ("trial", "state", "epoch", "mIoU", "trial best", "best so far", "ETA"):
        assert column in text
    assert "trial_0001" in text and "COMPLETED" in text and "2/2" in text
    assert f"best: {summary['best']['trial_id']}" in text
