"""A grid sweep whose budget is the whole grid: the last trial's `tell` must not end the driver with
Optuna's "Study.stop is supposed to be invoked inside an objective function" error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hpo.driver.runner import run_sweep


def test_a_grid_sweep_runs_the_whole_grid(write_sweep: Callable[..., Path]) -> None:
    summary = run_sweep(write_sweep(
        algorithm={"name": "grid", "grid_points": 2, "max_trials": 10, "max_epochs": 1},
        search_space={"parameters": ["train.optim.lr", "train.optim.weight_decay"]},
    ))
    assert summary["counts"] == {"COMPLETED": 4}
    assert len({(t["params"]["train.optim.lr"], t["params"]["train.optim.weight_decay"]) for t in summary["trials"]}) == 4
