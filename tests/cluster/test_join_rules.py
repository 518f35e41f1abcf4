"""What `hpo run --join` and the `workers` settings refuse before anything runs, and the budget count of a
study with re-queued trials (hpo/backends/optuna_workers.py)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from hpo.backends.optuna_workers import budget_used, retry_callback
from hpo.cli import main
from tests.cluster.cluster_support import base_sweep


def _write(tmp_path: Path, sweep: dict) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, " ".join((captured.out + captured.err).split())


def test_join_needs_a_postgresql_study(fixture_skill: Path, tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, base_sweep(fixture_skill, tmp_path / "ws"))
    code, output = _run(["run", str(path), "--join"], capsys)
    assert code == 7  # SweepConfigError
    assert "--join needs backend optuna with a PostgreSQL storage shared by every worker" in output
    assert "storage unset (a SQLite file of one worker)" in output


def test_join_waits_for_the_first_worker_then_names_what_is_missing(fixture_skill: Path, tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, base_sweep(fixture_skill, tmp_path / "ws", storage="postgresql://u@db:5432/optuna"))
    code, output = _run(["run", str(path), "--join", "--wait-s", "0.5"], capsys)
    assert code == 7  # SweepConfigError
    assert "no sweep 'fx' to join" in output and "did not appear within 0.5 s" in output
    assert "Start the first worker with `hpo run" in output


def test_join_refuses_a_different_sweep(fixture_skill: Path, tmp_path: Path) -> None:
    from hpo.driver.context import prepare_sweep
    from hpo.driver.join import join_sweep_context
    from hpo.driver.runner import start_workspace
    from hpo.sweep.config import load_sweep_config
    from skillkit.errors import SweepConfigError

    url = "postgresql://u@db:5432/optuna"
    first = _write(tmp_path, base_sweep(fixture_skill, tmp_path / "ws", storage=url))
    start_workspace(prepare_sweep(load_sweep_config(first)))
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    changed = _write(other_dir, base_sweep(fixture_skill, tmp_path / "ws", storage=url,
                                           algorithm={"name": "random", "max_trials": 9, "max_epochs": 3}))
    with pytest.raises(SweepConfigError, match=r"differs from the sweep it joins .* in algorithm; every worker must run"):
        join_sweep_context(load_sweep_config(changed), wait_s=0)
    ctx = join_sweep_context(load_sweep_config(first), wait_s=0, worker_id="w7")
    assert ctx.joined and ctx.worker_id == "w7"
    assert not (tmp_path / "ws" / "fx" / "state" / "worker_id").exists()  # the first worker's id is not taken


@pytest.mark.parametrize("workers, backend, message", [
    ({"heartbeat_interval_s": 10, "grace_period_s": 10}, "optuna",
     r"'workers.grace_period_s' = 10 must exceed 'workers.heartbeat_interval_s' = 10"),
    ({"max_retries": 1}, "ray", r"'workers' applies to backend optuna"),
    ({"heartbeats": 3}, "optuna", r"unknown key 'workers.heartbeats'.*Did you mean 'heartbeat_interval_s'"),
])
def test_workers_settings_are_checked(fixture_skill: Path, tmp_path: Path, capsys, workers, backend, message) -> None:
    path = _write(tmp_path, base_sweep(fixture_skill, tmp_path / "ws", workers=workers, backend=backend))
    code, output = _run(["plan", str(path)], capsys)
    assert code == 7  # SweepConfigError
    import re

    assert re.search(message, output), output


def test_the_budget_counts_a_retried_trial_once(tmp_path: Path) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=1, grace_period=2,
                                         heartbeat_stale_trial_callback=retry_callback(2))
    study = optuna.create_study(storage=storage, study_name="b")
    study.enqueue_trial({"x": 1.0})  # a planned trial not asked yet: not used
    first = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})  # pops the planned one
    second = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})
    study.tell(second, 1.0)
    assert budget_used(study.get_trials()) == 2
    study.enqueue_trial({"x": 0.5})
    assert budget_used(study.get_trials()) == 2
    # `first` dies: failed and re-queued (the retry counts as the same trial, once).
    storage.record_heartbeat(first._trial_id)
    failed = study.get_trials()[0]
    retry_callback(2)(study, failed)
    storage.set_trial_state_values(first._trial_id, state=TrialState.FAIL)
    trials = study.get_trials()
    assert [t.state for t in trials][-1] == TrialState.WAITING and trials[-1].system_attrs["failed_trial"] == 0
    assert budget_used(trials) == 2
