"""TAO AutoML's remaining algorithms under their own names: `dehb`, `bfbo`, `hyperband_es`.

Config acceptance and refusal; each algorithm's distinctive piece on its own (differential-evolution
children, local penalisation spreading a batch, the learning-curve rule); and a short fixture-trainer sweep
per algorithm on backend optuna that shows the behaviour end to end (the Ray sweeps are in test_ray_sweeps.py).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hpo.backends.bfbo_sampler import BatchGPSampler
from hpo.backends.curve_stop import EARLY_STOP_ATTR, CurveRule
from hpo.backends.de_sampler import DifferentialEvolutionSampler
from hpo.backends.optuna_factory import make_sampler
from hpo.backends.unit_cube import PROPOSAL_ATTR, UnitCube
from hpo.driver.runner import run_sweep
from hpo.space import compile_space
from hpo.sweep.config import sweep_config_from_dict
from skillkit.errors import SweepConfigError

optuna.logging.set_verbosity(optuna.logging.WARNING)


def config(algorithm: dict[str, Any], backend: str = "optuna") -> Any:
    return sweep_config_from_dict({"name": "x", "algorithm": algorithm, "backend": backend,
                                   "baseline": {"enabled": False}}, base_dir=Path("."))


# -------------------------------------------------------------------------------------- sweep config


@pytest.mark.parametrize("backend", ["optuna", "ray"])
@pytest.mark.parametrize("algorithm, sampler, scheduler", [
    ({"name": "dehb", "mutation_factor": 0.8, "crossover_prob": 0.9, "reduction_factor": 2}, "dehb", "hyperband"),
    ({"name": "bfbo", "n_startup_trials": 3}, "bfbo", "none"),
    ({"name": "bfbo", "pruner": "hyperband"}, "bfbo", "hyperband"),
    ({"name": "hyperband_es", "early_stop_threshold": 0.9, "min_early_stop_epochs": 5, "early_stop_margin": 0.1,
      "max_epochs": 9}, "random", "hyperband_es"),
    ({"name": "hyperband_es", "sampler": "bfbo"}, "bfbo", "hyperband_es"),
])
def test_each_algorithm_is_accepted_on_both_backends(algorithm: dict, sampler: str, scheduler: str, backend: str) -> None:
    resolved = config(algorithm, backend).algorithm
    assert (resolved.name, resolved.sampler, resolved.scheduler) == (algorithm["name"], sampler, scheduler)
    for knob in ("mutation_factor", "crossover_prob", "early_stop_threshold", "min_early_stop_epochs", "early_stop_margin"):
        if knob in algorithm:
            assert getattr(resolved, knob) == algorithm[knob]


@pytest.mark.parametrize("algorithm, backend, message", [
    ({"name": "dehb", "sampler": "tpe"}, "optuna", "'dehb' brings its own proposals (differential evolution)"),
    ({"name": "dehb", "early_stop_threshold": 0.5}, "optuna", "it applies to schedulers hyperband_es"),
    ({"name": "bfbo", "mutation_factor": 0.3}, "ray", "it applies to samplers dehb"),
    ({"name": "hyperband_es", "crossover_prob": 0.3}, "optuna", "it applies to samplers dehb"),
    ({"name": "hyperband_es", "grace_period": 2}, "ray", "not supported by 'hyperband_es' on backend 'ray'"),
    ({"name": "dehb", "grace_period": 2}, "ray", "not supported by 'hyperband' on backend 'ray'"),
    ({"name": "hyperband_es", "min_early_stop_epochs": 3}, "optuna", "must be >= 4, got 3"),
    ({"name": "hyperband_es", "max_epochs": 4}, "optuna", "leaves hyperband_es nothing to stop with an epoch budget of 4"),
    ({"name": "dehb", "mutation_factor": 0}, "optuna", "'algorithm.mutation_factor' must be > 0"),
    ({"name": "dehb", "crossover_prob": 1.5}, "optuna", "'algorithm.crossover_prob' must be <= 1"),
    ({"name": "dehb", "pruner": "median"}, "optuna", "'dehb' already decides early stopping"),
])
def test_knobs_that_do_not_apply_are_refused_naming_the_key(algorithm: dict, backend: str, message: str) -> None:
    with pytest.raises(SweepConfigError, match="sweep config") as raised:
        config(algorithm, backend)
    assert message in str(raised.value)


# ---------------------------------------------------------------------------------- the pieces alone


def _space() -> Any:
    schema = {"type": "object", "properties": {"train": {"type": "collection", "properties": {
        "lr": {"type": "float", "minimum": 1e-5, "maximum": 1e-1, "default": 1e-3, "automl_enabled": True},
        "width": {"type": "int", "minimum": 8, "maximum": 64, "math_cond": "/ 8", "default": 16, "automl_enabled": True},
        "act": {"type": "categorical", "enum": ["relu", "gelu", "silu"], "default": "relu", "automl_enabled": True},
    }}}}
    return compile_space(schema)


def test_the_unit_cube_round_trips_every_kind_of_dimension() -> None:
    space = _space()
    cube = UnitCube(space.static_dimensions(epoch_budget=5))
    rng = np.random.default_rng(0)
    for _ in range(20):
        _, point = space.sample_static(rng, epoch_budget=5)
        assert cube.decode(cube.encode(point)) == pytest.approx(point)
        vectors = rng.random((5, len(cube)))
        for vector in vectors:
            space.decode(cube.decode(vector), epoch_budget=5)  # any vector is a valid point
        assert cube.snap(vectors) == pytest.approx(np.array([cube.encode(cube.decode(v)) for v in vectors]))


def test_dehb_children_come_from_the_best_results_of_the_highest_budget_with_a_population() -> None:
    space = _space()
    sampler = DifferentialEvolutionSampler(space, seed=3, epoch_budget=9, crossover_prob=1.0)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for number in range(10):  # 10 results at 1 epoch, 5 of them at 3 epochs
        trial = study.ask()
        space.suggest(trial, epoch_budget=9)
        trial.report(number / 10, 1)
        if number >= 5:
            trial.report(number / 10 + 0.1, 3)
        study.tell(trial, state=TrialState.PRUNED)
    probe = study.ask()
    budget, population = sampler.population(study, study._storage.get_trial(probe._trial_id))
    assert budget == 3 and len(population) == 4  # the better half of 5, but never fewer than 4
    cube = sampler.cube
    best_four = [cube.encode(t.params) for t in sorted(study.trials[5:10], key=lambda t: -t.intermediate_values[3])[:4]]
    assert np.allclose(sorted(map(tuple, population)), sorted(map(tuple, best_four)))
    child = sampler.mutate(population.copy(), np.random.default_rng(1))
    # CR = 1: the child is a + F (b - c) for an ordered triple of members, where that lies in [0, 1]
    # (a coordinate leaving the cube is redrawn).
    def matches(mutant: np.ndarray) -> bool:
        inside = (mutant >= 0) & (mutant <= 1)
        return bool(inside.any() and np.allclose(child[inside], mutant[inside]))

    assert any(matches(a + 0.5 * (b - c)) for a, b, c in itertools.permutations(population, 3))
    assert ((child >= 0) & (child <= 1)).all()


def test_dehb_draws_at_random_until_a_budget_has_four_results() -> None:
    space = _space()
    study = optuna.create_study(sampler=make_sampler(config({"name": "dehb"}).algorithm, space, 0, epoch_budget=9))
    for _ in range(6):
        trial = study.ask()
        space.suggest(trial, epoch_budget=9)
        trial.report(0.5, 1)
        study.tell(trial, state=TrialState.PRUNED)
    notes = [t.system_attrs.get(PROPOSAL_ATTR) for t in study.trials]
    assert notes[:4] == [None] * 4  # random: no budget had 4 results yet
    assert notes[4] == {"algorithm": "dehb", "budget": 1, "population": 4}


def _smooth(params: dict[str, Any]) -> float:
    return -(np.log10(params["train.lr"]) + 2.5) ** 2 - ((params["train.width"] - 40) / 32) ** 2


@pytest.mark.parametrize("penalise", [True, False])
def test_bfbo_spreads_a_batch_of_concurrent_proposals(penalise: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four trials asked while none of them has a result: with local penalisation they are distinct and
    apart; without it (the same GP and EI) the batch collapses onto one point, which is what it is for."""
    if not penalise:
        monkeypatch.setattr(BatchGPSampler, "penalty", staticmethod(lambda model, points, *args: np.ones(len(points))))
    space = _space()
    sampler = make_sampler(config({"name": "bfbo", "n_startup_trials": 5}).algorithm, space, 2, epoch_budget=5)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(6):
        trial = study.ask()
        study.tell(trial, _smooth(space.suggest(trial, epoch_budget=5)))
    batch = []
    for _ in range(4):
        trial = study.ask()
        space.suggest(trial, epoch_budget=5)
        batch.append(trial)
    notes = [study._storage.get_trial(t._trial_id).system_attrs[PROPOSAL_ATTR] for t in batch]
    assert [n["pending"] for n in notes] == [0, 1, 2, 3]
    cube = UnitCube(space.static_dimensions(epoch_budget=5))
    vectors = [cube.encode(study._storage.get_trial(t._trial_id).params) for t in batch]
    closest = min(np.linalg.norm(a - b) for a, b in itertools.combinations(vectors, 2))
    if penalise:
        assert closest > 0.05, vectors
    else:
        assert closest < 0.05, vectors


def test_the_curve_rule_stops_only_a_confident_prediction_below_the_incumbent() -> None:
    rule = CurveRule(max_epochs=20, min_points=4, threshold=0.8, margin=0.05)
    epochs = [1, 2, 3, 4, 5]
    flat_low = [0.20, 0.26, 0.29, 0.305, 0.31]  # levels off near 0.33
    verdict = rule.verdict(epochs, flat_low, 0.6, maximize=True)
    assert verdict.stop and verdict.predicted < 0.4 and verdict.r2 > 0.95
    assert not rule.verdict(epochs, flat_low, 0.34, maximize=True).stop  # within the 5 % margin
    assert not rule.verdict(epochs, flat_low, None, maximize=True).stop  # no full-budget result yet
    assert not rule.verdict(epochs[:3], flat_low[:3], 0.6, maximize=True).stop  # too few points
    noisy = [0.2, 0.5, 0.1, 0.45, 0.15]
    assert not rule.verdict(epochs, noisy, 0.6, maximize=True).stop  # no confident fit
    falling_loss = [2.0, 1.5, 1.2, 1.0, 0.9]  # minimised: predicted to end near 0.13 after 20 epochs
    assert rule.verdict(epochs, falling_loss, 0.05, maximize=False).stop
    assert not rule.verdict(epochs, falling_loss, 0.2, maximize=False).stop


# -------------------------------------------------------------------------- fixture-trainer sweeps


def _epochs_run(sweep_dir: Path, trial_id: str) -> list[str]:
    path = sweep_dir / "trials" / trial_id / "epochs_run.txt"
    return path.read_text().split() if path.exists() else []


def _study(sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="fx", storage=f"sqlite:///{sweep_dir / 'state' / 'optuna.db'}")


def test_dehb_sweep_proposes_by_evolution_and_never_trains_an_epoch_twice(write_sweep: Callable[..., Path],
                                                                         tmp_path: Path) -> None:
    summary = run_sweep(write_sweep(algorithm={"name": "dehb", "max_trials": 10, "max_epochs": 3, "reduction_factor": 3},
                                    resources={"max_concurrent": 2}, seed=1, spec_overrides={"fixture.sleep_s": 0.05}))
    sweep_dir = tmp_path / "ws" / "fx"
    states = [t["state"] for t in summary["trials"]]
    assert set(states) <= {"COMPLETED", "PRUNED"} and "COMPLETED" in states
    for trial in summary["trials"]:  # a promoted trial goes on from where it was: each epoch once, one launch
        runs = _epochs_run(sweep_dir, trial["trial_id"])
        assert runs == [str(e) for e in range(1, len(runs) + 1)], (trial["trial_id"], runs)
        assert (sweep_dir / "trials" / trial["trial_id"] / "status.json").read_text().count('"STARTED"') == 1
    evolved = [t for t in _study(sweep_dir).trials if PROPOSAL_ATTR in t.system_attrs]
    assert evolved and all(t.system_attrs[PROPOSAL_ATTR]["algorithm"] == "dehb" for t in evolved)
    params = [json.dumps(t["params"], sort_keys=True) for t in summary["trials"]]
    assert len(set(params)) == len(params)


def test_bfbo_sweep_gives_concurrent_trials_distinct_model_based_points(write_sweep: Callable[..., Path],
                                                                        tmp_path: Path) -> None:
    summary = run_sweep(write_sweep(algorithm={"name": "bfbo", "max_trials": 6, "max_epochs": 2, "n_startup_trials": 2},
                                    resources={"max_concurrent": 2}, seed=4))
    sweep_dir = tmp_path / "ws" / "fx"
    assert summary["counts"] == {"COMPLETED": 6}
    modelled = [t for t in _study(sweep_dir).trials if PROPOSAL_ATTR in t.system_attrs]
    assert modelled, "no GP proposal"
    assert any(t.system_attrs[PROPOSAL_ATTR]["pending"] >= 1 for t in modelled)  # proposed beside a running trial
    params = [json.dumps(t["params"], sort_keys=True) for t in summary["trials"]]
    assert len(set(params)) == len(params)


def test_hyperband_es_sweep_stops_a_trial_whose_curve_cannot_beat_the_incumbent(write_sweep: Callable[..., Path],
                                                                               tmp_path: Path) -> None:
    # grace_period = max_epochs: Hyperband has no rung before the end, so every stop is the curve rule's.
    summary = run_sweep(write_sweep(algorithm={"name": "hyperband_es", "max_trials": 5, "max_epochs": 7, "grace_period": 7},
                                    resources={"max_concurrent": 1}, seed=2, spec_overrides={"fixture.sleep_s": 0.3}))
    sweep_dir = tmp_path / "ws" / "fx"
    study = _study(sweep_dir)
    stopped = [t for t in study.trials if EARLY_STOP_ATTR in t.user_attrs]
    assert stopped, [(t["trial_id"], t["state"]) for t in summary["trials"]]
    # (A trainer that finishes its budget before the stop lands is rightly recorded complete.)
    assert any(frozen.state == TrialState.PRUNED for frozen in stopped)
    for frozen in stopped:
        decision = frozen.user_attrs[EARLY_STOP_ATTR]
        assert decision["epochs_trained"] < 7
        assert decision["predicted"] < decision["incumbent"] * 0.95 and decision["r2"] >= 0.8
        complete_before = [t.value for t in study.trials if t.state == TrialState.COMPLETE and t.number < frozen.number]
        assert decision["incumbent"] == max(complete_before)
        record = next(t for t in summary["trials"] if t["number"] == frozen.number)
        if frozen.state == TrialState.PRUNED:
            assert record["state"] == "PRUNED" and len(record["history"]) < 7
