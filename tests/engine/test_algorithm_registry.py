"""The algorithm registry (`hpo.backends.algorithms`) and the sweep config agree: every algorithm name the
schema allows, on every backend the config (hence `hpo plan`) accepts, has an Optuna sampler and pruner or a
Ray search and scheduler in the registry; a pair the config refuses is one the registry says its backend
cannot run; and every registry entry is reachable from some accepted config (no dead builder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hpo.backends import algorithms
from hpo.backends.base import BACKENDS
from hpo.space import compile_space
from hpo.sweep.config import SweepConfig, sweep_config_from_dict, sweep_schema
from skillkit.errors import SweepConfigError

SCHEMA = sweep_schema()["properties"]
NAMES = SCHEMA["algorithm"]["properties"]["name"]["enum"]
SAMPLER_CHOICES = SCHEMA["algorithm"]["properties"]["sampler"]["enum"]
PRUNER_CHOICES = SCHEMA["algorithm"]["properties"]["pruner"]["enum"]
BACKEND_CHOICES = SCHEMA["backend"]["enum"]


def variants(name: str) -> list[dict[str, Any]]:
    """The `algorithm:` sections naming `name`: with each pruner (sampler algorithms) or each sampler
    (scheduler algorithms) the schema allows."""
    if name in algorithms.names_of("sampler"):
        return [{"name": name}] + [{"name": name, "pruner": pruner} for pruner in PRUNER_CHOICES]
    if name in algorithms.names_of("scheduler"):
        return [{"name": name}] + [{"name": name, "sampler": sampler} for sampler in SAMPLER_CHOICES]
    return [{"name": name}]


def tiny_space() -> Any:
    return compile_space({"type": "object", "properties": {"train": {"type": "collection", "properties": {
        "lr": {"type": "float", "minimum": 1e-5, "maximum": 1e-1, "default": 1e-3, "automl_enabled": True},
        "width": {"type": "int", "minimum": 8, "maximum": 64, "math_cond": "/ 8", "default": 16, "automl_enabled": True},
        "act": {"type": "categorical", "enum": ["relu", "gelu", "silu"], "default": "relu", "automl_enabled": True},
    }}}})


def load(section: dict[str, Any], backend: str, tmp_path: Path, **settings: Any) -> SweepConfig:
    data = {"name": "registry", "backend": backend, "workspace": str(tmp_path),
            "algorithm": {**section, "max_trials": 4, "max_epochs": 6, **settings}}
    return sweep_config_from_dict(data, base_dir=tmp_path)


CASES = [(section, backend) for name in NAMES for section in variants(name) for backend in BACKEND_CHOICES]


def case_id(case: tuple[dict[str, Any], str]) -> str:
    section, backend = case
    return "-".join([*map(str, section.values()), backend])


def test_the_registry_names_exactly_the_schemas_algorithms_and_backends() -> None:
    assert list(algorithms.ALGORITHMS) == NAMES  # the same names, in the order messages list them
    assert sorted(algorithms.BACKEND_NAMES) == sorted(BACKEND_CHOICES) == sorted(BACKENDS)
    assert list(algorithms.names_of("sampler")) == SAMPLER_CHOICES  # a scheduler algorithm's samplers
    assert sorted(algorithms.PRUNERS) == sorted(PRUNER_CHOICES)
    for entry in algorithms.ALGORITHMS.values():
        assert set(entry.backends) <= set(BACKEND_CHOICES), entry.name
        if entry.kind == "own":
            assert sorted(entry.resolves) == sorted(entry.backends) and entry.proposals, entry.name
        if set(entry.backends) != set(BACKEND_CHOICES):
            assert entry.refusal, entry.name  # a refused backend is refused with a reason


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_the_config_accepts_a_pair_exactly_when_the_registry_builds_it(case: tuple[dict[str, Any], str],
                                                                       tmp_path: Path) -> None:
    section, backend = case
    name = section["name"]
    if backend not in algorithms.ALGORITHMS[name].backends:
        problem = algorithms.backend_problem(name, backend)
        assert problem and f"algorithm {name!r} needs backend" in problem
        with pytest.raises(SweepConfigError, match=f"algorithm '{name}' needs backend"):
            load(section, backend, tmp_path)
        return
    config = load(section, backend, tmp_path)
    sampler, scheduler = config.algorithm.sampler, config.algorithm.scheduler
    assert algorithms.backend_problem(name, backend) is None
    assert sampler in algorithms.SAMPLERS and scheduler in algorithms.SCHEDULERS, (sampler, scheduler)
    if backend == "optuna":
        assert algorithms.SAMPLERS[sampler].optuna is not None, sampler
        assert algorithms.SCHEDULERS[scheduler].optuna is not None, scheduler
    else:
        assert algorithms.SCHEDULERS[scheduler].ray is not None, scheduler
        own = algorithms.SCHEDULERS[scheduler].ray_search
        assert own is not None or algorithms.SAMPLERS[sampler].ray is not None, sampler


def test_every_registry_builder_is_reached_by_an_accepted_config(tmp_path: Path) -> None:
    used: dict[str, set[tuple[str, str]]] = {"sampler": set(), "scheduler": set()}
    for (section, backend) in CASES:
        if backend in algorithms.ALGORITHMS[section["name"]].backends:
            config = load(section, backend, tmp_path)
            used["sampler"].add((config.algorithm.sampler, backend))
            used["scheduler"].add((config.algorithm.scheduler, backend))
    for backend in BACKEND_CHOICES:
        for sampler in algorithms.SAMPLERS.values():
            built = sampler.optuna if backend == "optuna" else sampler.ray
            assert (built is not None) == ((sampler.name, backend) in used["sampler"]), (sampler.name, backend)
        for scheduler in algorithms.SCHEDULERS.values():
            built = scheduler.optuna if backend == "optuna" else scheduler.ray
            assert (built is not None) == ((scheduler.name, backend) in used["scheduler"]), (scheduler.name, backend)


def test_the_optuna_builders_build_for_every_accepted_pair(tmp_path: Path) -> None:
    """Each Optuna sampler and pruner the registry names is built from a loaded config (Ray's builders are
    built by the search contract suite, which runs every Ray pair)."""
    import optuna

    space = tiny_space()
    for (section, backend) in CASES:
        if backend != "optuna" or backend not in algorithms.ALGORITHMS[section["name"]].backends:
            continue
        config = load(section, backend, tmp_path)
        assert isinstance(algorithms.optuna_sampler(config.algorithm, space, 0, epoch_budget=6),
                          optuna.samplers.BaseSampler)
        assert isinstance(algorithms.optuna_pruner(config.algorithm, 6), optuna.pruners.BasePruner)


def test_a_resolved_name_the_registry_lacks_is_a_clear_error(tmp_path: Path) -> None:
    config = load({"name": "pbt"}, "ray", tmp_path)
    with pytest.raises(SweepConfigError, match=r"early stopping 'pbt' is not available on backend optuna \(use backend ray\)"):
        algorithms.optuna_pruner(config.algorithm, 6)
    bohb = load({"name": "bohb"}, "ray", tmp_path).algorithm
    with pytest.raises(SweepConfigError, match=r"sampler 'bohb' is not available on backend optuna\."):
        algorithms.optuna_sampler(bohb, tiny_space(), 0)


def test_the_trial_budget_is_capped_by_a_grid_only(tmp_path: Path) -> None:
    space = tiny_space()  # grid_points 2: 2 x 2 levels and 3 options = 12 points
    for backend in BACKEND_CHOICES:
        assert algorithms.trial_budget(load({"name": "grid"}, backend, tmp_path, grid_points=2).algorithm, space, 6) == 4
        grid = load({"name": "grid"}, backend, tmp_path, grid_points=2, max_trials=50).algorithm
        assert algorithms.trial_budget(grid, space, 6) == 12
        assert algorithms.trial_budget(load({"name": "random"}, backend, tmp_path, max_trials=50).algorithm, space, 6) == 50


def test_ray_runs_hyperband_and_bohb_in_synchronous_brackets(tmp_path: Path) -> None:
    expected = {"hyperband": True, "hyperband_es": True, "bohb": True, "asha": False, "pbt": False, "tpe": False}
    for name, synchronous in expected.items():
        assert algorithms.synchronous(load({"name": name}, "ray", tmp_path).algorithm) is synchronous, name
