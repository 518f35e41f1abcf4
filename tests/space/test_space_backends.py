"""Optuna and Ray Tune conversions, define-by-run, option weights in samplers, seeding, PBT perturbation."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpo.space import SearchSpace, compile_space
from skillkit.errors import SearchSpaceError
from tests.space.space_schemas import tao_schema

optuna.logging.set_verbosity(optuna.logging.WARNING)

FLAT = tao_schema({
    "a.small_int": {"type": "int", "default": 2, "minimum": 1, "maximum": 4},
    "a.log_int": {"type": "int", "default": 20, "minimum": 1, "maximum": 400},
    "a.hidden": {"type": "int", "default": 256, "minimum": 64, "maximum": 1024, "math_cond": "/ 8"},
    "b.lr": {"type": "float", "default": 1e-3, "minimum": 1e-5, "maximum": 1e-1},
    "b.ratio": {"type": "float", "default": 0.5, "minimum": 0.0, "maximum": 1.0},
    "b.half": {"type": "float", "default": 2.0, "minimum": 0.0, "maximum": 10.0, "math_cond": "/ 2"},
    "c.opt": {"type": "categorical", "default": "adamw", "enum": ["adamw", "sgd", "lamb"], "option_weights": [0.7, 0.2, 0.1]},
    "c.flag": {"type": "bool", "default": True},
    "c.rank": {"type": "int", "default": 8, "minimum": 2, "maximum": 32, "math_cond": "^ 2"},
}, defaults=["a.small_int", "a.log_int", "a.hidden", "b.lr", "b.ratio", "b.half", "c.opt", "c.flag", "c.rank"])

CONDITIONAL = tao_schema({
    "crop.min": {"type": "int", "default": 4, "minimum": 2, "maximum": 8},
    "crop.max": {"type": "int", "default": 8, "minimum": 3, "maximum": 12, "math_cond": "> depends_on", "depends_on": "crop.min"},
    "train.epochs": {"type": "int", "default": 10, "minimum": 2, "maximum": 20},
    "train.warmup": {"type": "int", "default": 1, "minimum": 0, "maximum": 10, "math_cond": "/ 2", "depends_on": "train.epochs"},
    "train.milestones": {"type": "list_2", "default": [6, 8], "depends_on": "train.epochs"},
    "train.opt": {"type": "categorical", "default": "a", "enum": ["a", "b"], "option_weights": [3, 1]},
    "lr": {"type": "float", "default": 1e-3, "minimum": 0.0, "maximum": 1.0, "math_cond": "> 0"},
}, defaults=["crop.min", "crop.max", "train.epochs", "train.warmup", "train.milestones", "train.opt", "lr"])


@pytest.fixture(scope="module")
def flat() -> SearchSpace:
    return compile_space(FLAT)


@pytest.fixture(scope="module")
def conditional() -> SearchSpace:
    return compile_space(CONDITIONAL)


def test_optuna_distributions_for_unconditional_spaces(flat):
    assert not flat.is_conditional
    dists = flat.optuna_distributions()
    assert dists["a.small_int"] == IntDistribution(1, 4)
    assert dists["a.log_int"] == IntDistribution(1, 400, log=True)
    assert dists["a.hidden"] == IntDistribution(64, 1024, step=8)
    assert dists["b.lr"] == FloatDistribution(1e-5, 1e-1, log=True)
    assert dists["b.half"] == FloatDistribution(0.0, 10.0, step=2.0)
    assert dists["c.opt"] == CategoricalDistribution(["adamw", "sgd", "lamb"])
    assert dists["c.rank"] == CategoricalDistribution([2, 4, 8, 16, 32])
    assert dists["c.flag"] == CategoricalDistribution([False, True])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask(fixed_distributions=dists)
        assert flat.violations(trial.params) == []
        study.tell(trial, 0.0)


def test_conditional_spaces_refuse_plain_distributions(conditional):
    assert conditional.is_conditional
    assert set(conditional.conditional_names) == {"crop.max", "train.warmup", "train.milestones"}
    with pytest.raises(SearchSpaceError, match="conditional .*crop.max.*use define-by-run"):
        conditional.optuna_distributions()
    with pytest.raises(SearchSpaceError, match="optuna_search"):
        conditional.ray_param_space()


def test_define_by_run_respects_every_condition(conditional):
    study = optuna.create_study(sampler=conditional.optuna_sampler(optuna.samplers.TPESampler(seed=1, n_startup_trials=5), seed=1))
    seen = []

    def objective(trial):
        values = conditional.suggest(trial, epoch_budget=7)
        assert conditional.violations(values, epoch_budget=7) == []
        assert values["crop.max"] > values["crop.min"] and values["train.warmup"] == values["train.epochs"] // 2
        assert all(1 <= m <= 6 for m in values["train.milestones"])
        # the relational child is drawn as its fraction of the feasible range: a fixed [0, 1] distribution
        assert "crop.max" not in trial.params and 0.0 <= trial.params["crop.max#fraction"] <= 1.0
        assert "train.milestones#0" in trial.params and "train.warmup" not in trial.params  # derived: not drawn
        seen.append(values)
        return values["lr"]

    study.optimize(objective, n_trials=25)
    assert len(seen) == 25


def test_same_seed_same_samples(flat, conditional):
    for space in (flat, conditional):
        first = [space.sample(np.random.default_rng(7)) for _ in range(3)]
        again = [space.sample(np.random.default_rng(7)) for _ in range(3)]
        assert first == again
        assert space.sample(np.random.default_rng(8)) != first[0]

        def run(seed, space=space):
            study = optuna.create_study(sampler=space.optuna_sampler(optuna.samplers.TPESampler(seed=seed, n_startup_trials=4), seed=seed))
            out = []
            study.optimize(lambda t: (out.append(space.suggest(t)), 0.0)[1] + t.number, n_trials=8)  # past startup
            return out

        assert run(3) == run(3)
        assert run(3) != run(4)


def test_weighted_options_in_random_sampler_and_startup_of_model_based_samplers(conditional):
    # Random sampler: always weighted.
    study = optuna.create_study(sampler=conditional.optuna_sampler(seed=0))
    picks = []
    study.optimize(lambda t: (picks.append(conditional.suggest(t)["train.opt"]), 0.0)[1], n_trials=500)
    assert Counter(picks)["a"] / 500 == pytest.approx(0.75, abs=0.06)
    # TPE: weighted during its startup trials.
    tpe = optuna.samplers.TPESampler(seed=0, n_startup_trials=10_000)
    study = optuna.create_study(sampler=conditional.optuna_sampler(tpe, seed=0))
    picks = []
    study.optimize(lambda t: (picks.append(conditional.suggest(t)["train.opt"]), 0.0)[1], n_trials=400)
    assert Counter(picks)["a"] / 400 == pytest.approx(0.75, abs=0.065)


def test_base_sampler_decides_after_startup():
    class Spy(optuna.samplers.RandomSampler):
        calls: list[tuple[int, str]] = []

        def sample_independent(self, study, trial, name, dist):
            Spy.calls.append((trial.number, name))
            return super().sample_independent(study, trial, name, dist)

    space = compile_space(tao_schema({"opt": {"type": "categorical", "default": "a", "enum": ["a", "b"], "option_weights": [1, 3]}},
                                     defaults=["opt"]))
    sampler = space.optuna_sampler(Spy(seed=0), seed=0, n_startup_trials=3)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (space.suggest(t), 0.0)[1], n_trials=6)
    assert [number for number, name in Spy.calls if name == "opt"] == [3, 4, 5]
    with pytest.raises(SearchSpaceError, match="n_startup_trials must be >= 0"):
        space.optuna_sampler(seed=0, n_startup_trials=-1)


def _ray_draws(domain, n, seed=0):
    rng = np.random.default_rng(seed)
    return [domain.sample(random_state=rng) for _ in range(n)]


def test_ray_param_space_keeps_inclusive_bounds(flat):
    space = flat.ray_param_space()
    small = _ray_draws(space["a.small_int"], 400)
    assert set(small) == {1, 2, 3, 4}  # Tune's randint excludes its upper bound; ours includes it
    logs = _ray_draws(space["a.log_int"], 3000)
    assert min(logs) >= 1 and max(logs) <= 400 and max(logs) > 300
    hidden = _ray_draws(space["a.hidden"], 2000)
    assert all(v % 8 == 0 and 64 <= v <= 1024 for v in hidden) and max(hidden) == 1024 and min(hidden) == 64
    lrs = _ray_draws(space["b.lr"], 2000)
    assert 1e-5 <= min(lrs) and max(lrs) <= 1e-1 and abs(np.mean(np.log10(lrs) < -3) - 0.5) < 0.05
    halves = _ray_draws(space["b.half"], 500)
    assert set(halves) == {0.0, 2.0, 4.0, 6.0, 8.0, 10.0}
    assert set(_ray_draws(space["c.rank"], 300)) == {2, 4, 8, 16, 32}
    for draw in (dict(zip(space, values)) for values in zip(*(_ray_draws(d, 50, seed=1) for d in space.values()))):
        assert flat.violations(draw) == []


def test_ray_weighted_choice_and_seeding(flat):
    space = flat.ray_param_space()
    picks = Counter(_ray_draws(space["c.opt"], 3000))
    assert picks["adamw"] / 3000 == pytest.approx(0.7, abs=0.03)
    assert picks["lamb"] / 3000 == pytest.approx(0.1, abs=0.02)
    from ray.tune.search.variant_generator import generate_variants

    def variants(seed):
        rng = np.random.default_rng(seed)
        return [flat.select_values(config) for _ in range(5) for _, config in generate_variants(flat.ray_param_space(), random_state=rng)]

    assert variants(5) == variants(5) and variants(5) != variants(6)
    assert all(flat.violations(v) == [] for v in variants(5))


def test_ray_optuna_search_route_for_conditional_spaces(conditional):
    from hpo.space.to_ray import optuna_search

    def configs(seed):
        searcher = optuna_search(conditional, metric="mIoU", mode="max", seed=seed, epoch_budget=9)
        out = []
        for index in range(6):
            config = searcher.suggest(f"trial_{index}")
            values = conditional.select_values(config)
            assert conditional.violations(values, epoch_budget=9) == []
            searcher.on_trial_complete(f"trial_{index}", {"mIoU": float(index)})
            out.append(values)
        return out

    first = configs(11)
    assert first == configs(11)
    assert first != configs(12)


def test_perturb_stays_inside_bounds_and_conditions(flat, conditional):
    rng = np.random.default_rng(0)
    for space in (flat, conditional):
        values = space.sample(rng)
        changed = 0
        for _ in range(300):
            new = space.perturb(values, rng, factor=1.2)
            assert space.violations(new) == []
            changed += new != values
            values = new
        assert changed > 250
    near = flat.perturb({**flat.sample(np.random.default_rng(1)), "b.ratio": 0.5}, np.random.default_rng(2), resample_probability=0.0)
    assert near["b.ratio"] in (pytest.approx(0.6), pytest.approx(0.5 / 1.2))
    assert flat.perturb(near, np.random.default_rng(3)) == flat.perturb(near, np.random.default_rng(3))
    with pytest.raises(SearchSpaceError, match="factor must be > 1"):
        flat.perturb(near, rng, factor=1.0)


def test_yaml_round_trip_and_hand_edit_validation(conditional, flat):
    for space in (flat, conditional):
        text = space.to_yaml()
        assert SearchSpace.from_yaml(text) == space
        assert SearchSpace.from_yaml(text).sample(np.random.default_rng(0)) == space.sample(np.random.default_rng(0))
    data = flat.to_dict()
    assert data["parameters"][0]["name"] == "a.hidden"
    data["parameters"][0]["low"] = 2000
    with pytest.raises(SearchSpaceError, match=r"'a.hidden': low <= high must hold, but got \(low=2000, high=1024\)"):
        SearchSpace.from_dict(data)
    data = flat.to_dict()
    data["parameters"][0]["colour"] = "red"
    with pytest.raises(SearchSpaceError, match="unknown keys \\['colour'\\]"):
        SearchSpace.from_dict(data)
    with pytest.raises(SearchSpaceError, match="expected format"):
        SearchSpace.from_dict({"format": "other"})
    bad = conditional.to_dict()
    bad["parameters"] = [p for p in bad["parameters"] if p["name"] != "crop.min"]
    with pytest.raises(SearchSpaceError, match="depends on 'crop.min'"):
        SearchSpace.from_dict(bad)


def test_overrides_read_back_as_the_same_values(flat):
    import yaml

    values = flat.sample(np.random.default_rng(0))
    values["b.lr"] = 1e-05
    for override in flat.to_overrides(values):
        name, text = override.split("=", 1)
        assert yaml.safe_load(text) == values[name]
        if isinstance(values[name], float):
            assert isinstance(yaml.safe_load(text), float)
    (lr_override,) = [o for o in flat.to_overrides(values) if o.startswith("b.lr=")]
    assert lr_override == "b.lr=1.0e-05" and math.isclose(yaml.safe_load(lr_override.split("=")[1]), 1e-05)
