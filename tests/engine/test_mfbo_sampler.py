"""`mfbo`: the same-budget model (hpo.backends.mfbo_sampler) learns from one budget's results only, moves up
the budgets as they fill, starts from the schema defaults, and is what a sweep config without
algorithm.name runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo.backends.mfbo_sampler import SameBudgetTPESampler, default_point, default_values, kendall_tau
from hpo.backends.optuna_factory import make_pruner, make_sampler
from hpo.space import compile_space
from hpo.sweep.config import sweep_config_from_dict

X = FloatDistribution(0.0, 1.0)


def curve_trial(x: float, values: dict[int, float], state: TrialState) -> optuna.trial.FrozenTrial:
    value = values[max(values)] if state == TrialState.COMPLETE else None
    return create_trial(params={"x": x}, distributions={"x": X}, intermediate_values=values, state=state, value=value)


def crossing_study(sampler: SameBudgetTPESampler, *, full_budget_trials: int) -> optuna.Study:
    """Maximise; after 1 epoch x near 0.9 looks best, after 3 epochs x near 0.1 is (the curves cross)."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    rng = np.random.default_rng(0)
    for x in rng.uniform(0, 1, 30):  # many cheap 1-epoch results favouring large x
        study.add_trial(curve_trial(float(x), {1: float(x)}, TrialState.PRUNED))
    for x in np.linspace(0.02, 0.98, full_budget_trials):  # few 3-epoch results favouring small x
        study.add_trial(curve_trial(float(x), {1: float(x), 3: 1.0 - float(x)}, TrialState.COMPLETE))
    return study


def proposals(study: optuna.Study, n: int = 12) -> list[float]:
    out = []
    for _ in range(n):
        trial = study.ask({"x": X})
        out.append(trial.params["x"])
        study.tell(trial, state=TrialState.FAIL)  # not an observation: every ask sees the same data
    return out


@pytest.mark.parametrize("surrogate", ["tpe", "gp"])
def test_model_fits_the_highest_budget_with_enough_results(surrogate: str) -> None:
    sampler = SameBudgetTPESampler(seed=0, min_points=6, surrogate=surrogate)
    study = crossing_study(sampler, full_budget_trials=8)
    xs = proposals(study, 6 if surrogate == "gp" else 12)
    assert sampler.last_budget == 3
    assert np.median(xs) < 0.35, xs  # follows the 3-epoch results, not the 30 one-epoch ones


@pytest.mark.parametrize("surrogate", ["tpe", "gp"])
def test_model_falls_back_to_a_lower_budget_until_the_higher_one_fills(surrogate: str) -> None:
    sampler = SameBudgetTPESampler(seed=0, min_points=6, surrogate=surrogate)
    study = crossing_study(sampler, full_budget_trials=4)  # only 4 results at 3 epochs: too few
    xs = proposals(study, 6 if surrogate == "gp" else 12)
    assert sampler.last_budget == 1
    assert np.median(xs) > 0.65, xs


def test_random_until_any_budget_has_enough_results() -> None:
    sampler = SameBudgetTPESampler(seed=0, min_points=6)
    study = optuna.create_study(sampler=sampler)
    for x in (0.1, 0.2, 0.3):
        study.add_trial(curve_trial(x, {1: x, 3: x}, TrialState.COMPLETE))
    proposals(study, 2)
    assert sampler.last_budget is None
    assert sampler.model_budget(study.get_trials()) is None
    with pytest.raises(ValueError, match="min_points"):
        SameBudgetTPESampler(min_points=1)


def agreeing_study(sampler: SameBudgetTPESampler, *, agree: bool) -> optuna.Study:
    """Maximise; 30 one-epoch results favour large x; 8 trials also reached 3 epochs, where the ranking is the
    same (agree) or reversed (the curves cross)."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for x in np.random.default_rng(0).uniform(0, 1, 30):
        study.add_trial(curve_trial(float(x), {1: float(x)}, TrialState.PRUNED))
    for x in np.linspace(0.02, 0.98, 8):
        study.add_trial(curve_trial(float(x), {1: float(x), 3: float(x) if agree else 1.0 - float(x)},
                                    TrialState.COMPLETE))
    return study


def test_kendall_tau_counts_concordant_minus_discordant_pairs() -> None:
    assert kendall_tau([(1, 1), (2, 2), (3, 3)]) == 1.0
    assert kendall_tau([(1, 3), (2, 2), (3, 1)]) == -1.0
    assert kendall_tau([(1, 1), (2, 3), (3, 2)]) == pytest.approx(1 / 3)
    assert kendall_tau([(1, 1)]) == 0.0


def test_rank_agreement_fits_the_lower_budget_only_where_it_ranks_like_the_highest() -> None:
    agreeing = SameBudgetTPESampler(seed=0, min_points=6, model_budget="rank_agreement")
    xs = proposals(agreeing_study(agreeing, agree=True))
    assert agreeing.last_budget == 1  # 38 one-epoch results that rank like the 3-epoch ones
    assert np.median(xs) > 0.65, xs
    crossing = SameBudgetTPESampler(seed=0, min_points=6, model_budget="rank_agreement")
    xs = proposals(agreeing_study(crossing, agree=False))
    assert crossing.last_budget == 3  # the 1-epoch ranking misleads: the highest budget, as by default
    assert np.median(xs) < 0.35, xs
    highest = SameBudgetTPESampler(seed=0, min_points=6)
    proposals(agreeing_study(highest, agree=True), 1)
    assert highest.last_budget == 3
    with pytest.raises(ValueError, match="model_budget"):
        SameBudgetTPESampler(model_budget="lowest")


def test_random_fraction_draws_that_share_at_random_by_trial_number() -> None:
    def model_fitted(fraction: float, n: int = 60) -> list[bool]:
        sampler = SameBudgetTPESampler(seed=3, min_points=6, random_fraction=fraction)
        study = crossing_study(sampler, full_budget_trials=8)
        out = []
        for _ in range(n):
            trial = study.ask({"x": X})
            out.append(sampler.last_budget is not None)
            study.tell(trial, state=TrialState.FAIL)
        return out

    assert all(model_fitted(0.0))
    assert not any(model_fitted(1.0))
    third = model_fitted(1 / 3)
    assert 0.15 < 1 - np.mean(third) < 0.5
    assert third == model_fitted(1 / 3)  # decided by (seed, trial number): a resumed sweep decides the same
    with pytest.raises(ValueError, match="random_fraction"):
        SameBudgetTPESampler(random_fraction=1.5)


def test_the_knobs_reach_the_sampler_from_the_sweep_config_and_only_for_mfbo(tmp_path: Path) -> None:
    from skillkit.errors import SweepConfigError

    def config(algorithm: dict[str, Any]) -> Any:
        return sweep_config_from_dict({"name": "s", "algorithm": {"max_trials": 9, "max_epochs": 9, **algorithm},
                                       "backend": "optuna"}, base_dir=tmp_path).algorithm

    algorithm = config({"random_fraction": 0.25, "model_budget": "rank_agreement", "surrogate": "gp"})
    assert (algorithm.sampler, algorithm.random_fraction, algorithm.model_budget, algorithm.surrogate) == (
        "mfbo", 0.25, "rank_agreement", "gp")
    sampler = make_sampler(algorithm, compile_space(tiny_schema()), 0, epoch_budget=9)
    found = []

    def walk(obj: Any, depth: int = 0) -> None:
        if isinstance(obj, SameBudgetTPESampler):
            found.append(obj)
        elif depth < 4:
            for value in vars(obj).values():
                if isinstance(value, optuna.samplers.BaseSampler):
                    walk(value, depth + 1)

    walk(sampler)
    assert [(s._random_fraction, s._model_budget, type(s._model).__name__) for s in found] == [
        (0.25, "rank_agreement", "GPSampler")]
    with pytest.raises(SweepConfigError, match="random_fraction"):
        config({"name": "tpe", "random_fraction": 0.3})
    with pytest.raises(SweepConfigError, match="model_budget"):
        config({"model_budget": "lowest"})
    with pytest.raises(SweepConfigError, match="surrogate"):
        config({"surrogate": "forest"})
    with pytest.raises(SweepConfigError, match="surrogate"):
        config({"name": "tpe", "surrogate": "gp"})


def tiny_schema() -> dict[str, Any]:
    leaves = {"lr": {"type": "float", "default": 0.001, "minimum": 1e-5, "maximum": 0.1},
              "opt": {"type": "categorical", "default": "sgd", "enum": ["adamw", "sgd"]},
              "layers": {"type": "int", "default": 6, "minimum": 1, "maximum": 12}}
    return {"type": "object", "default": {"train": {k: v["default"] for k, v in leaves.items()}},
            "properties": {"train": {"type": "collection", "default": {k: v["default"] for k, v in leaves.items()},
                                     "properties": {k: {**v, "automl_enabled": True} for k, v in leaves.items()}}},
            "automl_default_parameters": [f"train.{k}" for k in leaves], "automl_disabled_parameters": [],
            "x_tao_schema": {"action": "train", "model": "testnet", "schema_version": 1}}


def test_first_trial_is_the_schema_defaults(tmp_path: Path) -> None:
    space = compile_space(tiny_schema())
    assert default_values(space) == {"train.lr": 0.001, "train.opt": "sgd", "train.layers": 6}
    config, point = default_point(space, 0, epoch_budget=9)
    assert config == {"train.lr": 0.001, "train.opt": "sgd", "train.layers": 6}
    algorithm = sweep_config_from_dict({"name": "s", "algorithm": {"max_trials": 9, "max_epochs": 9},
                                        "backend": "optuna"}, base_dir=tmp_path).algorithm
    study = optuna.create_study(direction="maximize", sampler=make_sampler(algorithm, space, 0, epoch_budget=9),
                                pruner=make_pruner(algorithm, 9))
    first = space.suggest(study.ask(), epoch_budget=9)
    second = space.suggest(study.ask(), epoch_budget=9)
    assert first == config and second != config
    assert isinstance(study.pruner, optuna.pruners.HyperbandPruner)


def test_a_sweep_naming_no_algorithm_runs_mfbo_and_reports_default_vs_best(write_sweep: Any, tmp_path: Path) -> None:
    import yaml
    from rich.console import Console

    from hpo.driver.live import render_outcome
    from hpo.driver.runner import run_sweep

    path = write_sweep(algorithm={"max_trials": 4, "max_epochs": 2, "n_startup_trials": 2})
    data = yaml.safe_load(path.read_text())
    del data["algorithm"]["name"]
    path.write_text(yaml.safe_dump(data))
    summary = run_sweep(path)
    assert (summary["algorithm"], summary["sampler"], summary["scheduler"]) == ("mfbo", "mfbo", "hyperband")
    comparison = summary["default_vs_best"]
    first = min(summary["trials"], key=lambda t: t["number"])
    assert comparison["default_trial"] == first["trial_id"]  # the defaults run first
    values = [h["kpi"]["mIoU"] for t in summary["trials"] for h in t["history"] if h["epoch"] <= comparison["epoch"]]
    assert comparison["best"] == max(values) >= comparison["default"]
    console = Console(record=True, width=300)
    render_outcome(summary, console)
    assert f"default vs best after {comparison['epochs']} epochs: default configuration ({first['trial_id']})" in console.export_text()
