"""Three Optuna workers on one study in the real PostgreSQL server (a database of our own), exactly as
docs/cluster-optuna-workers.md starts them: `hpo run SWEEP.yaml` and twice `hpo run SWEEP.yaml --join`,
sharing one workspace folder. One joined worker is SIGKILLed in the middle of a trial: its trainer dies with
it, its heartbeat stops, another worker fails the trial and takes up Optuna's retry, continuing it from its
last validated checkpoint in the shared trial folder. The study must end with exactly the budgeted trials,
no trial run twice to the end, none lost, every trial logged as a child of the one MLflow parent run.
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

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from hpo.backends.optuna_workers import budget_used, is_retry
from tests.cluster.cluster_support import base_sweep, postgres_database

HPO = Path(sys.executable).parent / "hpo"
BUDGET = 6


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "CI": "1"}
    with open(log, "wb") as handle:
        return subprocess.Popen([str(HPO), *args], env=env, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _trial_records(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    records = {}
    for path in (sweep_dir / "trials").glob("*/trial.json"):
        try:
            records[path.parent.name] = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
    return records


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def test_three_workers_one_killed_mid_trial(fixture_skill: Path, tmp_path: Path) -> None:
    with postgres_database() as url:
        sweep = base_sweep(
            fixture_skill, tmp_path / "ws",
            algorithm={"name": "random", "max_trials": BUDGET, "max_epochs": 4},
            resources={"cpus_per_trial": 1, "max_concurrent": 1}, storage=url,
            workers={"heartbeat_interval_s": 1, "grace_period_s": 5, "max_retries": 2},
            spec_overrides={"fixture.sleep_s": 0.6}, tracking={"enabled": True},
        )
        config = tmp_path / "sweep.yaml"
        config.write_text(yaml.safe_dump(sweep, sort_keys=False))
        sweep_dir = tmp_path / "ws" / "fx"
        # All three at once: the joined workers wait for the first one to create the sweep.
        first = _start(["run", str(config), "--yes", "--no-live"], tmp_path / "first.log")
        doomed = _start(["run", str(config), "--join", "--worker-id", "doomed", "--no-live"], tmp_path / "doomed.log")
        other = _start(["run", str(config), "--join", "--worker-id", "other", "--no-live"], tmp_path / "other.log")
        workers = [first, doomed, other]
        try:
            victim = _wait_for_validated_trial_of(url, "doomed", sweep_dir, doomed)
            trainer_pid = int((sweep_dir / "trials" / victim / "trainer.pid").read_text().split()[0])
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=30)
            deadline = time.monotonic() + 20
            while _alive(trainer_pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _alive(trainer_pid), "the dead worker's trainer outlived it"
            for proc, name in ((first, "first"), (other, "other")):
                code = proc.wait(timeout=300)
                assert code == 0, f"{name} worker exited {code}:\n" + (tmp_path / f"{name}.log").read_text()[-3000:]
        finally:
            for proc in workers:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
        # The docs' other commands on the finished shared sweep: status from anywhere; a resume of the first
        # worker finds the budget spent and nothing running, and adds no trial.
        status = subprocess.run([str(HPO), "status", str(sweep_dir), "--json"], capture_output=True, text=True,
                                timeout=120, env={**os.environ, "CI": "1"})
        assert status.returncode == 0 and len(json.loads(status.stdout)["trials"]) == BUDGET, status.stderr
        resumed = subprocess.run([str(HPO), "resume", str(sweep_dir), "--no-live"], capture_output=True, text=True,
                                 timeout=300, env={**os.environ, "CI": "1"})
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
        storage = _storage(url)
        trials = optuna.load_study(study_name="fx", storage=storage).get_trials(deepcopy=False)
        storage.engine.dispose()

    # Exactly the budget: 6 logical trials; the killed one FAILED in storage and was retried once.
    assert budget_used(trials) == BUDGET
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.user_attrs["hpo_trial_id"] for t in failed] == [victim]
    assert failed[0].user_attrs["hpo_worker"] == "doomed"
    retries = [t for t in trials if is_retry(t)]
    assert len(retries) == 1 and retries[0].system_attrs["failed_trial"] == failed[0].number
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["hpo_trial_id"] == victim
    assert retry.user_attrs["hpo_worker"] in {"other", _first_worker_id(sweep_dir)}
    assert retry.params == failed[0].params
    # No duplicate, none lost: six engine trials, each told COMPLETE exactly once.
    completed = Counter(t.user_attrs["hpo_trial_id"] for t in trials if t.state == TrialState.COMPLETE)
    assert len(completed) == BUDGET and set(completed.values()) == {1}
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["counts"] == {"COMPLETED": BUDGET}
    assert sorted(t["trial_id"] for t in summary["trials"]) == sorted(completed)
    # All three workers ran trials.
    assert {"doomed", "other"} <= {t.user_attrs["hpo_worker"] for t in trials}

    # The retried trial continued from its checkpoint in the shared folder: its second run started at the
    # last validated epoch, and no epoch was validated twice.
    events = [json.loads(line) for line in (sweep_dir / "trials" / victim / "status.json").read_text().splitlines()]
    starts = [e for e in events if e["status"] == "STARTED"]
    assert len(starts) == 2 and int(starts[1]["message"].rsplit(" ", 1)[-1]) >= 1, starts  # "...at epoch N"
    validated = Counter(e["epoch"] for e in events if e["status"] == "RUNNING" and "mIoU" in e["kpi"])
    assert sorted(validated) == [0, 1, 2, 3] and set(validated.values()) == {1}, validated  # TAO epoch indices
    victim_record = _trial_records(sweep_dir)[victim]
    assert [h["epoch"] for h in victim_record["history"]] == [0, 1, 2, 3]

    _check_mlflow(sweep_dir, completed)


def _first_worker_id(sweep_dir: Path) -> str:
    return (sweep_dir / "state" / "worker_id").read_text().strip()


def _storage(url: str) -> optuna.storages.RDBStorage:
    """One storage (one connection pool) per use: the server is shared, its connections are few."""
    return optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg2://"))


def _wait_for_validated_trial_of(url: str, worker: str, sweep_dir: Path, proc: subprocess.Popen) -> str:
    """The trial id of a RUNNING trial of `worker` that has validated at least one epoch (and has more to go)."""
    storage = _storage(url)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"worker {worker} exited early ({proc.returncode})"
            try:
                study = optuna.load_study(study_name="fx", storage=storage)
            except KeyError:
                time.sleep(0.5)
                continue
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if trial.user_attrs.get("hpo_worker") == worker and 1 <= len(trial.intermediate_values) <= 2:
                    trial_id = trial.user_attrs["hpo_trial_id"]
                    if (sweep_dir / "trials" / trial_id / "trainer.pid").is_file():
                        return trial_id
            time.sleep(0.3)
        pytest.fail(f"worker {worker} never had a trial mid-way")
    finally:
        storage.engine.dispose()


def _check_mlflow(sweep_dir: Path, trial_ids: Counter) -> None:
    """One parent run; each trial (whichever worker ran it) one child run under it."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{sweep_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fx")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("hpo.run_kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("hpo.run_kind") == "trial"]
    assert len(parents) == 1
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(r.data.tags["hpo.trial_id"] for r in children) == sorted(trial_ids)
