"""End-to-end sweeps on the Ray backend with the fixture trainer: ASHA, synchronous HyperBand with
pause/resume from the trial's own checkpoint, PBT exploit/explore, BOHB, trial failures.

One local Ray (2 CPUs, 127.0.0.1, no dashboard) serves the whole module; it offers the `hpo_trial_slot`
resource the backend uses to cap synchronous HyperBand at max_concurrent running trials.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from skillkit.status.follower import read_validations

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False, resources={"hpo_trial_slot": 2})
    yield
    ray.shutdown()


def run(write_sweep: Callable[..., Path], **changes: Any) -> dict[str, Any]:
    from hpo.driver.runner import run_sweep

    return run_sweep(write_sweep(backend="ray", **changes))


def epochs_run(sweep_dir: Path, trial_id: str) -> list[str]:
    path = sweep_dir / "trials" / trial_id / "epochs_run.txt"
    return path.read_text().split() if path.exists() else []


def assert_every_report_in_summary(sweep_dir: Path, summary: dict[str, Any]) -> None:
    for trial in summary["trials"]:
        written = {v.epoch: v.value for v in read_validations(sweep_dir / "trials" / trial["trial_id"] / "status.json", "mIoU")}
        assert {h["epoch"]: h["kpi"]["mIoU"] for h in trial["history"]} == written, trial["trial_id"]


def test_asha_prunes_and_tells_the_searcher_pruned(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    summary = run(write_sweep, algorithm={"name": "asha", "sampler": "tpe", "max_trials": 6, "max_epochs": 3,
                                          "reduction_factor": 2, "grace_period": 1, "n_startup_trials": 2},
                  spec_overrides={"fixture.sleep_s": 0.2}, seed=5)
    sweep_dir = tmp_path / "ws" / "fx"
    states = {t["trial_id"]: t["state"] for t in summary["trials"]}
    assert len(states) == 6 and "PRUNED" in states.values() and "COMPLETED" in states.values(), states
    assert summary["best"]["trial_id"] in {t for t, s in states.items() if s == "COMPLETED"} or summary["best"]
    assert_every_report_in_summary(sweep_dir, summary)
    # The flaw fix on Ray: scheduler-stopped trials reach the TPE study as PRUNED, never as COMPLETE.
    study = optuna.load_study(study_name="fx", storage=f"sqlite:///{sweep_dir / 'state' / 'optuna.db'}")
    by_ray_id = {t.user_attrs["hpo_trial_id"]: t for t in study.trials}
    for trial in summary["trials"]:
        frozen = by_ray_id[trial["trial_id"]]
        if trial["state"] == "PRUNED":
            assert frozen.state == TrialState.PRUNED
        else:
            assert frozen.state == TrialState.COMPLETE and frozen.value == trial["best"]["metric"]


def test_hyperband_pauses_and_resumes_from_the_trials_own_checkpoint(write_sweep: Callable[..., Path],
                                                                     tmp_path: Path) -> None:
    # Brackets for 3 epochs, factor 3: 2 trials at the full budget, then 3 trials with rung 1 of which the best
    # goes on; two of those three are PAUSED at rung 1 while the third catches up.
    summary = run(write_sweep, algorithm={"name": "hyperband", "max_trials": 5, "max_epochs": 3, "reduction_factor": 3},
                  spec_overrides={"fixture.sleep_s": 0.3}, seed=1)
    sweep_dir = tmp_path / "ws" / "fx"
    resumed = []
    for trial in summary["trials"]:
        runs = epochs_run(sweep_dir, trial["trial_id"])
        assert len(runs) == len(set(runs)), (trial["trial_id"], runs)  # no epoch trained twice
        assert runs == [str(e) for e in range(1, len(runs) + 1)]
        starts = (sweep_dir / "trials" / trial["trial_id"] / "status.json").read_text().count('"STARTED"')
        if starts > 1:
            resumed.append(trial)
            log = (sweep_dir / "trials" / trial["trial_id"] / "spec.yaml").read_text()
            assert "model_epoch_" in log  # the last launch resumed from one of its own checkpoints
    assert resumed, "no trial was paused and resumed"
    assert any(t["state"] == "COMPLETED" for t in resumed)
    assert {t["state"] for t in summary["trials"]} <= {"COMPLETED", "PRUNED"}
    assert_every_report_in_summary(sweep_dir, summary)


def test_pbt_exploits_a_donor_checkpoint_and_explores_within_the_space(write_sweep: Callable[..., Path],
                                                                        tmp_path: Path) -> None:
    summary = run(write_sweep, algorithm={"name": "pbt", "max_trials": 4, "max_epochs": 4, "perturbation_interval": 1,
                                          "quantile_fraction": 0.5},
                  spec_overrides={"fixture.sleep_s": 0.1}, seed=2)
    sweep_dir = tmp_path / "ws" / "fx"
    assert summary["counts"] == {"COMPLETED": 4}
    exploited = [t for t in summary["trials"] if t["lineage"]]
    assert exploited, "no PBT exploit happened"
    for trial in exploited:
        for step in trial["lineage"]:
            copy = sweep_dir / "trials" / trial["trial_id"] / "exploits" / step["donor"] / step["checkpoint"]
            assert copy.is_file()  # exploit = the donor's checkpoint, copied
            lr = step["params"]["train.optim.lr"]
            assert 1e-5 <= lr <= 0.1  # explore stays in bounds
            assert set(step["params"]) == {"train.optim.lr", "train.optim.weight_decay"}  # hot ones only
        assert trial["params"] == trial["lineage"][-1]["params"]
        assert [h["epoch"] for h in trial["history"]] == [0, 1, 2, 3]  # TAO epoch indices
    assert_every_report_in_summary(sweep_dir, summary)


def test_bohb_finds_a_best_trial(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    pytest.importorskip("hpbandster")
    summary = run(write_sweep, algorithm={"name": "bohb", "max_trials": 4, "max_epochs": 2, "reduction_factor": 2},
                  spec_overrides={"fixture.sleep_s": 0.05}, seed=4)
    assert len(summary["trials"]) == 4 and summary["best"] is not None
    assert {t["state"] for t in summary["trials"]} <= {"COMPLETED", "PRUNED"}
    assert_every_report_in_summary(tmp_path / "ws" / "fx", summary)


def test_failures_on_ray_are_classified_and_never_best(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    summary = run(write_sweep, algorithm={"name": "random", "max_trials": 4, "max_epochs": 2}, seed=11,
                  search_space={"custom_param_ranges": {"train.optim.lr": {"min": 0.001, "max": 0.1}}},
                  spec_overrides={"fixture.fail": "oom", "fixture.fail_at_epoch": 2, "fixture.fail_if_lr_above": 0.01})
    failed = [t for t in summary["trials"] if t["state"] == "FAILED"]
    assert failed and all(t["failure_class"] == "oom" and "out of memory" in t["failure_reason"] for t in failed)
    assert summary["best"]["trial_id"] not in {t["trial_id"] for t in failed}
    outcome = json.loads((tmp_path / "ws" / "fx" / "trials" / failed[0]["trial_id"] / "outcome.json").read_text())
    assert outcome["failure_class"] == "oom"


def test_time_budget_leaves_trials_resumable(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    from hpo.driver.runner import resume_sweep

    first = run(write_sweep, algorithm={"name": "random", "max_trials": 2, "max_epochs": 4, "time_budget_s": 2.0},
                spec_overrides={"fixture.sleep_s": 1.0})
    sweep_dir = tmp_path / "ws" / "fx"
    assert first["stop_reason"] == "time_budget"
    assert any(t["state"] == "PAUSED" for t in first["trials"]), [(t["trial_id"], t["state"]) for t in first["trials"]]
    second = resume_sweep(sweep_dir, use_default_observers=False, time_budget_s=0)
    assert second["counts"] == {"COMPLETED": 2}
    for trial in second["trials"]:
        runs = epochs_run(sweep_dir, trial["trial_id"])
        assert runs == ["1", "2", "3", "4"], (trial["trial_id"], runs)
    assert_every_report_in_summary(sweep_dir, second)


def test_dehb_resumes_promoted_trials_from_their_own_checkpoints(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    # Synchronous HyperBand under DE proposals: the promoted trial of a bracket is paused at its rung and
    # continues from its own checkpoint (the dehb package would train it again from scratch). The seed gives
    # a bracket whose promoted trial is not the last to reach the rung (that one goes on without a pause);
    # draws depend only on (seed, trial number) since the samplers are reseeded per trial.
    summary = run(write_sweep, algorithm={"name": "dehb", "max_trials": 5, "max_epochs": 3, "reduction_factor": 3},
                  spec_overrides={"fixture.sleep_s": 0.3}, seed=4)
    sweep_dir = tmp_path / "ws" / "fx"
    resumed = []
    for trial in summary["trials"]:
        runs = epochs_run(sweep_dir, trial["trial_id"])
        assert runs == [str(e) for e in range(1, len(runs) + 1)], (trial["trial_id"], runs)  # each epoch once
        if (sweep_dir / "trials" / trial["trial_id"] / "status.json").read_text().count('"STARTED"') > 1:
            resumed.append(trial)
            launches = (sweep_dir / "trials" / trial["trial_id"] / "launches.jsonl").read_text().splitlines()
            assert "model_epoch_" in json.loads(launches[-1])["resume"]  # from its own checkpoint
    assert resumed and any(t["state"] == "COMPLETED" for t in resumed)
    assert_every_report_in_summary(sweep_dir, summary)


def test_hyperband_es_stops_a_trial_whose_curve_cannot_beat_the_incumbent(write_sweep: Callable[..., Path],
                                                                          tmp_path: Path) -> None:
    # max 6 epochs at factor 6, brackets in Ray's order: 2 trials with no rung before epoch 6, 6 one-epoch
    # trials (the best goes on to 6), 2 more without a rung. Hyperband alone stops trials only after 1 epoch;
    # a trial stopped after 4 or 5 epochs was stopped by its extrapolated curve against the best complete one.
    summary = run(write_sweep, algorithm={"name": "hyperband_es", "max_trials": 10, "max_epochs": 6, "reduction_factor": 6,
                                          "early_stop_margin": 0.0},
                  resources={"max_concurrent": 1}, spec_overrides={"fixture.sleep_s": 0.05}, seed=3)
    sweep_dir = tmp_path / "ws" / "fx"
    by_curve = [t for t in summary["trials"] if t["state"] == "PRUNED" and 4 <= len(t["history"]) < 6]
    assert by_curve, [(t["trial_id"], t["state"], len(t["history"])) for t in summary["trials"]]
    incumbent = max(t["best"]["metric"] for t in summary["trials"] if t["state"] == "COMPLETED")
    for trial in by_curve:
        assert trial["best"]["metric"] < incumbent
    for trial in summary["trials"]:
        runs = epochs_run(sweep_dir, trial["trial_id"])
        assert runs == [str(e) for e in range(1, len(runs) + 1)], (trial["trial_id"], runs)
    assert_every_report_in_summary(sweep_dir, summary)


def test_bfbo_proposes_beside_running_trials(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    summary = run(write_sweep, algorithm={"name": "bfbo", "max_trials": 5, "max_epochs": 1, "n_startup_trials": 2},
                  spec_overrides={"fixture.sleep_s": 0.3}, seed=6)
    sweep_dir = tmp_path / "ws" / "fx"
    assert summary["counts"] == {"COMPLETED": 5}
    study = optuna.load_study(study_name="fx", storage=f"sqlite:///{sweep_dir / 'state' / 'optuna.db'}")
    notes = [t.system_attrs["hpo_proposal"] for t in study.trials if "hpo_proposal" in t.system_attrs]
    assert notes and any(note["pending"] >= 1 for note in notes), notes
    params = [json.dumps(t["params"], sort_keys=True) for t in summary["trials"]]
    assert len(set(params)) == len(params)
