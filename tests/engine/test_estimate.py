"""Honest estimates: `hpo plan --probe` always measures (and says when it reuses history instead), the estimate
counts the scheduler's epochs, the trials that run at once, start-up and promotion, and it comes within ±30%
of the wall time the sweep then takes (fixture trainer: epochs of a known length, real processes)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hpo.driver.context import prepare_sweep
from hpo.driver.estimate import TimingEstimate, estimate_wall, format_duration, makespan, trial_epochs
from hpo.driver.plan import make_plan
from hpo.driver.runner import execute, start_workspace
from hpo.sweep.config import AlgorithmConfig, load_sweep_config


def _algorithm(**changes) -> AlgorithmConfig:
    base = dict(name="asha", sampler="random", scheduler="asha", max_trials=5, max_epochs=3, grace_period=1,
                reduction_factor=2)
    return AlgorithmConfig(**{**base, **changes})


def test_epochs_per_trial_follow_asynchronous_successive_halving() -> None:
    assert trial_epochs(_algorithm(), 3, 5) == [3, 3, 2, 1, 1]  # the quickstart's shape: 10 epochs
    assert sum(trial_epochs(_algorithm(reduction_factor=3, max_trials=32), 12, 32)) == 84
    assert trial_epochs(_algorithm(scheduler="none"), 3, 4) == [3, 3, 3, 3]


def test_makespan_schedules_longest_first_on_the_slots() -> None:
    assert makespan([10, 10, 5, 5, 3], 2) == 18
    assert makespan([4, 4, 4], 1) == 12 and makespan([], 2) == 0


def test_the_estimate_adds_start_up_promotion_and_tracking(write_sweep: Callable[..., Path]) -> None:
    config = load_sweep_config(write_sweep(algorithm={"name": "asha", "max_trials": 5, "max_epochs": 3,
                                                      "grace_period": 1, "reduction_factor": 2},
                                           resources={"max_concurrent": 2}, promotion={"enabled": True}))
    timing = TimingEstimate(2.0, 5.0, "test", evaluate_s=4.0, store_s=3.0, plots_s=6.0)
    wall = estimate_wall(config, 3, timing, slots=2)
    assert wall.epochs == (3, 3, 2, 1, 1)
    assert wall.trials_s == makespan([11, 11, 9, 7, 7], 2) and wall.promotion_s == 4.0  # tracking is off here
    assert wall.total_s == wall.setup_s + wall.trials_s + wall.promotion_s


def test_a_tracked_sweep_adds_the_store_the_plots_and_packaging_the_mlflow_model(
        write_sweep: Callable[..., Path]) -> None:
    config = load_sweep_config(write_sweep(algorithm={"name": "random", "max_trials": 2, "max_epochs": 1},
                                           resources={"max_concurrent": 2}, tracking={"enabled": True},
                                           promotion={"enabled": True}))
    timing = TimingEstimate(2.0, 5.0, "test", evaluate_s=4.0, store_s=3.0, plots_s=6.0, package_s=7.0)
    wall = estimate_wall(config, 1, timing, slots=2)
    assert wall.setup_s == 3.0 and wall.promotion_s == 4.0 + 6.0 + 7.0
    unpromoted = estimate_wall(config, 1, timing, slots=2, promotes=False)
    assert unpromoted.promotion_s == 6.0  # no champion: nothing evaluated or packaged, the plots still drawn


def test_probe_measures_even_with_history_and_history_says_so(write_sweep: Callable[..., Path]) -> None:
    from hpo.driver.runner import run_sweep

    path = write_sweep(algorithm={"name": "random", "max_trials": 2, "max_epochs": 2})
    run_sweep(path)
    ctx = prepare_sweep(load_sweep_config(path))
    assert make_plan(ctx).timing.source.startswith("reusing this sweep's history")
    assert make_plan(ctx, probe=True).timing.source.startswith("probe: 2 runs at once of one epoch")


@pytest.mark.slow
def test_estimate_is_within_30_percent_of_the_actual_wall_time(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    path = write_sweep(algorithm={"name": "asha", "max_trials": 6, "max_epochs": 4, "grace_period": 1,
                                  "reduction_factor": 2},
                       resources={"max_concurrent": 2}, spec_overrides={"fixture.sleep_s": 1.0},
                       promotion={"enabled": True})
    ctx = prepare_sweep(load_sweep_config(path))
    plan = make_plan(ctx, probe=True)
    assert plan.timing.evaluate_s is not None  # promotion's final evaluation was timed
    start_workspace(ctx)
    started = time.monotonic()
    execute(ctx, planned=plan.batch, use_default_observers=False)
    actual = time.monotonic() - started
    summary = json.loads((tmp_path / "ws" / "fx" / "summary.json").read_text())
    epochs = sum(t["history"][-1]["epoch"] + 1 for t in summary["trials"])  # epochs trained (TAO index + 1)
    print(f"estimate {plan.estimated_wall_s:.1f} s, actual {actual:.1f} s ({epochs} epochs trained)")
    assert abs(plan.estimated_wall_s - actual) <= 0.3 * actual, (plan.estimated_wall_s, actual, plan.wall, epochs)


def test_hpo_run_with_probe_prints_its_estimate_and_at_the_end_how_it_compared(
        write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    """What the quickstart runs (`hpo run CONFIG --yes --probe`): the estimate is printed before the sweep, and
    the last line sets the wall time the sweep took against it, as `plan/estimate_check.json` records."""
    path = write_sweep(algorithm={"name": "random", "max_trials": 2, "max_epochs": 2})
    done = subprocess.run([sys.executable, "-m", "hpo.cli", "run", str(path), "--yes", "--probe", "--no-live"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert "Estimated wall time" in done.stdout and "probe: 2 runs at once of one epoch" in done.stdout, done.stdout
    assert "A new study created" not in done.stderr, done.stderr  # Optuna's INFO about the probe's scratch studies
    check = json.loads((tmp_path / "ws" / "fx" / "plan" / "estimate_check.json").read_text())
    plan = json.loads((tmp_path / "ws" / "fx" / "plan" / "plan.json").read_text())
    assert check["estimated_s"] == plan["estimated_wall_s"] > 0 and check["actual_s"] > 0
    assert check["relative_error"] is not None
    last = done.stdout.strip().splitlines()[-1].strip()
    said = re.fullmatch(r"the sweep took [0-9hms ]+; the plan estimated ([0-9hms ]+) \(([+-]\d+)%\)", last)
    assert said, last
    assert said.group(1) == format_duration(check["estimated_s"])
    assert abs(int(said.group(2)) - 100 * check["relative_error"]) <= 1  # the file keeps 3 decimals
