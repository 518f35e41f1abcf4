"""Before launch: which parameters an algorithm can search (held defaults vs refused explicit selections),
grid levels and explicit grid points over the static space, the lazy grid order, and BOHB's ConfigSpace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hpo.backends.grid_sampler import GridOrder
from hpo.backends.optuna_factory import grid_size, grid_values
from hpo.driver.context import prepare_sweep
from hpo.sweep.config import load_sweep_config
from skillkit.errors import SweepConfigError


def context(write_sweep: Callable[..., Path], **changes):  # noqa: ANN201
    return prepare_sweep(load_sweep_config(write_sweep(**changes)))


def test_cmaes_holds_a_choice_parameter_at_its_default_and_says_why(write_sweep: Callable[..., Path]) -> None:
    ctx = context(write_sweep, algorithm={"name": "cmaes", "max_trials": 4, "max_epochs": 2})
    assert "model.activation" not in ctx.space.names and len(ctx.space.names) == 3
    (held,) = ctx.held
    assert (held.name, held.value) == ("model.activation", "relu") and "CMA-ES" in held.reason
    assert any("model.activation stays at 'relu'" in note for note in ctx.notes)


def test_an_explicitly_selected_parameter_the_algorithm_cannot_search_is_refused(write_sweep: Callable[..., Path]) -> None:
    with pytest.raises(SweepConfigError, match=r"cannot search 1 of the parameters listed .*model\.activation"):
        context(write_sweep, algorithm={"name": "cmaes", "max_trials": 4, "max_epochs": 2},
                search_space={"parameters": ["train.optim.lr", "model.activation"]})
    with pytest.raises(SweepConfigError, match=r"model\.width \(cold: PBT changes values"):
        context(write_sweep, backend="ray", algorithm={"name": "pbt", "max_trials": 4, "max_epochs": 3},
                search_space={"parameters": ["train.optim.lr", "model.width"]})


def test_pbt_searches_the_hot_parameters_and_holds_the_cold_ones(write_sweep: Callable[..., Path]) -> None:
    ctx = context(write_sweep, backend="ray", algorithm={"name": "pbt", "max_trials": 4, "max_epochs": 3})
    assert set(ctx.space.names) == {"train.optim.lr", "train.optim.weight_decay"}
    assert {h.name: h.value for h in ctx.held} == {"model.width": 32, "model.activation": "relu"}
    assert all(p.hot for p in ctx.space.parameters)


def test_grid_levels_and_explicit_points(write_sweep: Callable[..., Path]) -> None:
    ctx = context(write_sweep, algorithm={"name": "grid", "max_trials": 4, "max_epochs": 2, "grid_points": 3,
                                          "grid_values": {"train.optim.lr": [0.0001, 0.001]}})
    grid = grid_values(ctx.space, 3, ctx.config.algorithm.grid_values, epoch_budget=2)
    assert grid["train.optim.lr"] == [0.0001, 0.001]
    assert grid["model.activation"] == ["relu", "gelu", "silu"] and grid["model.width"] == [8, 36, 64]
    assert grid["train.optim.weight_decay"] == [0.0, 0.25, 0.5]
    assert grid_size(grid) == 2 * 3 * 3 * 3
    with pytest.raises(SweepConfigError, match=r"grid_values.train.optim.lr' = \[5.0\]: \[5.0\] outside"):
        grid_values(ctx.space, 3, {"train.optim.lr": [5.0]})
    with pytest.raises(SweepConfigError, match="no such searched parameter"):
        grid_values(ctx.space, 3, {"model.depth": [1]})


def _relational_space():  # noqa: ANN202
    from hpo.space import compile_space
    from tests.space.space_schemas import tao_schema

    return compile_space(tao_schema({
        "a.min": {"type": "int", "default": 4, "minimum": 2, "maximum": 8},
        "a.max": {"type": "int", "default": 8, "minimum": 3, "maximum": 12, "math_cond": ">= depends_on",
                  "depends_on": "a.min"},
        "a.hidden": {"type": "int", "default": 64, "minimum": 32, "maximum": 128, "math_cond": "/ 8"},
        "a.opt": {"type": "categorical", "default": "x", "enum": ["x", "y"], "option_weights": [0.9, 0.1]},
        "a.flag": {"type": "bool", "default": True},
    }, defaults=["a.min", "a.max", "a.hidden", "a.opt", "a.flag"]))


def test_a_relational_child_takes_levels_of_its_feasible_range_never_explicit_points() -> None:
    space = _relational_space()
    grid = grid_values(space, 3)
    assert grid["a.max#fraction"] == [0.0, 0.5, 1.0] and "a.max" not in grid
    decoded = [space.decode({**{k: v[0] for k, v in grid.items()}, "a.min": low, "a.max#fraction": f})
               for low in grid["a.min"] for f in grid["a.max#fraction"]]
    assert all(v["a.max"] >= v["a.min"] for v in decoded)
    assert {(v["a.min"], v["a.max"]) for v in decoded} >= {(2, 3), (2, 12), (8, 8), (8, 12)}  # the ends are reached
    with pytest.raises(SweepConfigError, match="depends on a.min and takes grid_points levels"):
        grid_values(space, 3, {"a.max": [5]})


def test_the_lazy_grid_visits_distinct_points_spread_over_the_grid() -> None:
    grid = {"a": [1, 2, 3], "b": ["x", "y"], "c": [0.0, 0.5, 1.0, 1.5]}
    order = GridOrder(grid, seed=3)
    points = [tuple(order.point(k).values()) for k in range(order.size)]
    assert order.size == 24 and len(set(points)) == 24  # a full cycle: every point once
    assert GridOrder(grid, seed=3).first_points(5) == order.first_points(5)  # a pure function of (grid, seed)
    assert GridOrder(grid, seed=4).first_points(5) != order.first_points(5)
    # no memory of the grid: 3^16 points, the first few drawn at once
    huge = GridOrder({f"d{i}": [0, 1, 2] for i in range(16)}, seed=0)
    first = huge.first_points(50)
    assert huge.size == 3 ** 16 and len({tuple(p.values()) for p in first}) == 50
    assert {p["d15"] for p in first} == {0, 1, 2}  # the last dimension moves too (not lexicographic)


def test_bohb_config_space_keeps_steps_weights_and_relations() -> None:
    pytest.importorskip("ConfigSpace")
    from hpo.backends.ray_bohb import config_space, stepped_levels

    space = _relational_space()
    configuration = config_space(space)
    configuration.seed(0)
    levels = stepped_levels(space)["a.hidden"]
    opts = []
    for sample in configuration.sample_configuration(200):
        point = dict(sample)
        point["a.hidden"] = levels[int(point["a.hidden"])]
        values = space.decode(point)
        assert space.violations(values) == [] and values["a.max"] >= values["a.min"] and values["a.hidden"] % 8 == 0
        opts.append(values["a.opt"])
    assert 0.8 < opts.count("x") / len(opts) < 0.97  # the option weights reach BOHB
