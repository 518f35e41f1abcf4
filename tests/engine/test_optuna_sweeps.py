"""End-to-end sweeps on the Optuna backend with the fixture trainer: every sampler and pruner, failures,
observers, the time budget, the baseline, PostgreSQL storage, and the partial-score flaw fix."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from hpo.driver.observer import SweepObserver
from hpo.driver.runner import SweepFailedError, resume_sweep, run_sweep
from hpo.trials.resources import GpuPool
from skillkit.status.follower import read_validations


def study_of(summary_root: Path, name: str = "fx") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{summary_root / 'state' / 'optuna.db'}")


def assert_every_report_in_summary(sweep_dir: Path, summary: dict[str, Any]) -> None:
    """Every validation a trainer wrote is in summary.json, with the same value."""
    for trial in summary["trials"]:
        written = {v.epoch: v.value for v in read_validations(sweep_dir / "trials" / trial["trial_id"] / "status.json", "mIoU")}
        recorded = {h["epoch"]: h["kpi"]["mIoU"] for h in trial["history"]}
        assert written == recorded, trial["trial_id"]


def epochs_run(sweep_dir: Path, trial_id: str) -> list[str]:
    path = sweep_dir / "trials" / trial_id / "epochs_run.txt"
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("sampler", ["random", "tpe", "bayesian", "cmaes", "grid"])
def test_each_sampler_finds_a_best_trial(write_sweep: Callable[..., Path], tmp_path: Path, sampler: str) -> None:
    algorithm: dict[str, Any] = {"name": sampler, "max_trials": 4, "max_epochs": 2}
    if sampler in ("tpe", "bayesian"):
        algorithm["n_startup_trials"] = 2
    if sampler == "bayesian":
        algorithm["max_trials"] = 3  # one GP fit is enough to exercise it; each fit costs seconds on CPU
    if sampler == "grid":
        algorithm["grid_points"] = 2
    summary = run_sweep(write_sweep(algorithm=algorithm))
    sweep_dir = tmp_path / "ws" / "fx"
    assert summary["counts"] == {"COMPLETED": algorithm["max_trials"]}
    assert summary["best"] is not None and (sweep_dir / summary["best"]["checkpoint"]).is_file()
    best_value = max(t["best"]["metric"] for t in summary["trials"])
    assert summary["best"]["metric"] == best_value
    assert_every_report_in_summary(sweep_dir, summary)
    study = study_of(sweep_dir)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * algorithm["max_trials"]
    # The first batch shown by the plan (seeded draws) is what ran first.
    if sampler == "grid":
        assert len({json.dumps(t["params"], sort_keys=True) for t in summary["trials"]}) == 4


@pytest.mark.parametrize("pruner", ["median", "successive_halving", "hyperband"])
def test_pruners_stop_trials_and_tell_optuna_pruned(write_sweep: Callable[..., Path], tmp_path: Path, pruner: str) -> None:
    algorithm: dict[str, Any] = {"name": "random", "pruner": pruner, "max_trials": 6, "max_epochs": 4,
                                 "grace_period": 1}
    if pruner == "median":
        algorithm["n_startup_trials"] = 2
    else:
        algorithm["reduction_factor"] = 2
    # Epochs long enough (0.2 s) for a stop to land before the trainer finishes on its own.
    summary = run_sweep(write_sweep(algorithm=algorithm, resources={"max_concurrent": 1}, seed=3,
                                    spec_overrides={"fixture.sleep_s": 0.2}))
    sweep_dir = tmp_path / "ws" / "fx"
    pruned = [t for t in summary["trials"] if t["state"] == "PRUNED"]
    assert pruned, [(t["trial_id"], t["state"]) for t in summary["trials"]]
    study = study_of(sweep_dir)
    for trial in summary["trials"]:
        frozen = study.trials[trial["number"]]
        if trial["state"] == "PRUNED":
            # The flaw fix: a partial result is told PRUNED (intermediate values only), never COMPLETE.
            assert frozen.state == TrialState.PRUNED
            assert max(frozen.intermediate_values) < 4
            assert len(epochs_run(sweep_dir, trial["trial_id"])) < 4
        else:
            assert frozen.state == TrialState.COMPLETE and sorted(frozen.intermediate_values) == [1, 2, 3, 4]
            assert frozen.value == trial["best"]["metric"]
    assert study.best_trial.state == TrialState.COMPLETE
    assert_every_report_in_summary(sweep_dir, summary)


def test_failed_trials_never_become_best(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    # High learning rates crash at epoch 2 after a strong epoch-1 score; they must not be picked.
    summary = run_sweep(write_sweep(
        algorithm={"name": "random", "max_trials": 6, "max_epochs": 2}, seed=11,
        search_space={"custom_param_ranges": {"train.optim.lr": {"min": 0.001, "max": 0.1}}},
        spec_overrides={"fixture.fail": "crash", "fixture.fail_at_epoch": 2, "fixture.fail_if_lr_above": 0.01},
    ))
    failed = [t for t in summary["trials"] if t["state"] == "FAILED"]
    completed = [t for t in summary["trials"] if t["state"] == "COMPLETED"]
    assert failed and completed
    assert all(t["failure_class"] == "internal" and "fixture crash" in t["failure_reason"] for t in failed)
    assert summary["best"]["trial_id"] in {t["trial_id"] for t in completed}
    study = study_of(tmp_path / "ws" / "fx")
    assert {study.trials[t["number"]].state for t in failed} == {TrialState.FAIL}


def test_a_sweep_where_every_trial_fails_stops_early_and_says_why(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    path = write_sweep(algorithm={"name": "random", "max_trials": 20, "max_epochs": 2}, resources={"max_concurrent": 1},
                       spec_overrides={"fixture.fail": "oom"})
    with pytest.raises(SweepFailedError, match=r"all 3 trials so far failed .*\(3 oom\); last failure, trial_0002 \[oom\]: CUDA out of memory"):
        run_sweep(path)
    summary = json.loads((tmp_path / "ws" / "fx" / "summary.json").read_text())
    assert len(summary["trials"]) == 3 and summary["stop_reason"] == "all_failed" and summary["best"] is None


def test_a_data_failure_stops_the_sweep_at_once(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    path = write_sweep(algorithm={"name": "random", "max_trials": 20, "max_epochs": 2}, resources={"max_concurrent": 1},
                       spec_overrides={"fixture.fail": "data"})
    with pytest.raises(SweepFailedError, match=r"a trial failed on the dataset, which every trial shares \(1 data\)"):
        run_sweep(path)


class Recorder(SweepObserver):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def sweep_started(self, sweep: Any) -> None:
        self.events.append(("sweep_started", sweep.config.name))

    def trial_started(self, trial_record: Any) -> None:
        self.events.append(("trial_started", trial_record.trial_id))
        trial_record.mlflow_run_id = f"run-{trial_record.trial_id}"

    def trial_reported(self, trial_record: Any, report: Any) -> None:
        self.events.append(("trial_reported", (trial_record.trial_id, report["epoch"])))

    def trial_finished(self, trial_record: Any) -> None:
        self.events.append(("trial_finished", (trial_record.trial_id, trial_record.state)))

    def sweep_finished(self, summary: Any) -> None:
        self.events.append(("sweep_finished", summary["status"]))


class Exploding(SweepObserver):
    def trial_reported(self, trial_record: Any, report: Any) -> None:
        raise RuntimeError("tracking server down")


def test_observers_see_every_event_in_order_and_cannot_break_the_sweep(write_sweep: Callable[..., Path]) -> None:
    recorder = Recorder()
    summary = run_sweep(write_sweep(algorithm={"name": "random", "max_trials": 3, "max_epochs": 2}),
                        observers=[Exploding(), recorder])
    events = recorder.events
    assert events[0] == ("sweep_started", "fx") and events[-1] == ("sweep_finished", "finished")
    for trial in summary["trials"]:
        mine = [(kind, data) for kind, data in events if isinstance(data, tuple) and data[0] == trial["trial_id"]
                or data == trial["trial_id"]]
        assert mine == [("trial_started", trial["trial_id"]), ("trial_reported", (trial["trial_id"], 0)),
                        ("trial_reported", (trial["trial_id"], 1)), ("trial_finished", (trial["trial_id"], "COMPLETED"))]
        assert trial["mlflow_run_id"] == f"run-{trial['trial_id']}"  # set by an observer, persisted by the engine


def test_time_budget_pauses_trials_and_resume_finishes_them(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    path = write_sweep(algorithm={"name": "random", "max_trials": 3, "max_epochs": 4, "time_budget_s": 1.5},
                       spec_overrides={"fixture.sleep_s": 0.8})
    first = run_sweep(path)
    sweep_dir = tmp_path / "ws" / "fx"
    assert first["stop_reason"] == "time_budget" and "time budget" in first["message"]
    paused = [t for t in first["trials"] if t["state"] == "PAUSED"]
    assert paused
    resumed = resume_sweep(sweep_dir, time_budget_s=0)  # the budget bounds each driver run
    assert resumed["counts"] == {"COMPLETED": 3}
    for trial in resumed["trials"]:
        assert epochs_run(sweep_dir, trial["trial_id"]) == ["1", "2", "3", "4"]  # no epoch trained twice
    assert_every_report_in_summary(sweep_dir, resumed)


def test_baseline_is_evaluated_when_the_base_spec_has_a_pretrained_model(write_sweep: Callable[..., Path],
                                                                         tmp_path: Path) -> None:
    checkpoint = tmp_path / "pretrained.pth"
    checkpoint.write_text(json.dumps({"epoch": 3, "step": 12, "progress": 0.6, "spec": {}}))
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"train": {"pretrained_model_path": str(checkpoint)}}))
    summary = run_sweep(write_sweep(base_spec=str(base), algorithm={"name": "random", "max_trials": 2, "max_epochs": 2}))
    baseline = summary["baseline"]
    assert baseline["status"] == "ok" and baseline["checkpoint"] == str(checkpoint)
    assert baseline["metric"] == pytest.approx(1 - 2.718281828459045 ** (-0.6 / 3))
    assert (tmp_path / "ws" / "fx" / "baseline" / "status.json").is_file()


def test_postgresql_storage_shares_the_study(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"hpo_engine_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres", connect_timeout=3)
    except psycopg2.OperationalError:
        pytest.fail("PostgreSQL is needed at 127.0.0.1:5432 (user postgres, trust auth; docs/testing.md)")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        summary = run_sweep(write_sweep(algorithm={"name": "tpe", "max_trials": 3, "max_epochs": 2, "n_startup_trials": 1},
                                        storage=url))
        assert summary["counts"] == {"COMPLETED": 3}
        study = optuna.load_study(study_name="fx", storage=url.replace("postgresql://", "postgresql+psycopg2://"))
        assert len(study.trials) == 3 and study.best_value == summary["best"]["metric"]
        worker = (tmp_path / "ws" / "fx" / "state" / "worker_id").read_text().strip()
        assert {t.user_attrs["hpo_worker"] for t in study.trials} == {worker}
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def test_gpu_pool_packs_fractions_and_whole_gpus() -> None:
    pool = GpuPool(["0", "1"], 0.5)
    assert pool.capacity == 4
    got = [pool.acquire(f"t{i}") for i in range(5)]
    assert sorted(got[:4]) == ["0", "0", "1", "1"] and got[4] is None
    pool.release("t0")
    assert pool.acquire("t5") == got[0]
    whole = GpuPool(["0", "1", "2"], 2)
    assert whole.acquire("a") == "0,1" and whole.acquire("b") is None
    cpu = GpuPool([], 0)
    assert cpu.acquire("x") == "" and cpu.capacity is None


def test_a_trial_the_driver_died_creating_is_adopted_with_its_draws(write_sweep: Callable[..., Path],
                                                                    tmp_path: Path) -> None:
    from hpo.driver.context import prepare_sweep
    from hpo.driver.runner import start_workspace
    from hpo.sweep.config import load_sweep_config

    path = write_sweep(algorithm={"name": "random", "max_trials": 2, "max_epochs": 2})
    start_workspace(prepare_sweep(load_sweep_config(path)))
    sweep_dir = tmp_path / "ws" / "fx"
    study = optuna.create_study(study_name="fx", storage=f"sqlite:///{sweep_dir / 'state' / 'optuna.db'}",
                                direction="maximize")
    asked = study.ask()  # the driver was SIGKILLed while sampling: one value drawn, no tag, no trial folder
    lr = asked.suggest_float("train.optim.lr", 1e-5, 0.1, log=True)
    summary = resume_sweep(sweep_dir)
    assert summary["counts"] == {"COMPLETED": 2}
    adopted = summary["trials"][0]
    assert adopted["trial_id"] == "trial_0000" and adopted["params"]["train.optim.lr"] == lr
    assert set(adopted["params"]) == {"model.activation", "model.width", "train.optim.lr", "train.optim.weight_decay"}


@pytest.mark.parametrize("gpus,per_trial,expected", [(1, 0.5, {"0"}), (2, 1, {"0", "1"}), (None, 0, {""})])
def test_each_trial_gets_its_gpus_and_thread_count(write_sweep: Callable[..., Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, gpus: int | None,
                                                   per_trial: float, expected: set[str]) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    resources: dict[str, Any] = {"gpus_per_trial": per_trial, "max_concurrent": 2, "cpus_per_trial": 2}
    if gpus is not None:
        resources["gpus"] = gpus
    summary = run_sweep(write_sweep(algorithm={"name": "random", "max_trials": 4, "max_epochs": 2}, resources=resources,
                                    spec_overrides={"fixture.sleep_s": 0.3}))
    seen = set()
    for trial in summary["trials"]:
        lines = (tmp_path / "ws" / "fx" / "trials" / trial["trial_id"] / "trial_env.jsonl").read_text().splitlines()
        env = json.loads(lines[-1])
        assert env["OMP_NUM_THREADS"] == "2"
        assert env["CUDA_VISIBLE_DEVICES"] == trial["resources"]["cuda_visible_devices"]
        seen.add(env["CUDA_VISIBLE_DEVICES"])
    assert seen == expected


def test_a_slow_healthy_trial_keeps_fast_failures_from_stopping_the_sweep() -> None:
    from hpo.driver.guard import SweepGuard
    from hpo.trials.record import TrialRecord

    def failed(trial_id: str) -> TrialRecord:
        record = TrialRecord(trial_id=trial_id, number=0, params={}, metric="mIoU", direction="maximize")
        record.finish("FAILED", failure_class="oom", failure_reason="CUDA out of memory")
        return record

    guard = SweepGuard(max_consecutive_failures=2, time_budget_s=None)
    guard.trial_reported("healthy")  # still training, validations coming in
    guard.trial_finished(failed("a"))
    guard.trial_finished(failed("b"))
    assert guard.reason is None
    guard.trial_finished(failed("healthy"))  # it failed too: now nothing is working
    assert guard.reason == "all_failed" and "all 3 trials so far failed" in guard.message
