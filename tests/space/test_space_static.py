"""The static form of a search space (hpo.space.static) and the fraction reparameterisation of relational
children: fixed dimensions for every configuration, decode == sample, every relation holds, and the
reparameterised child keeps exactly its define-by-run distribution and support."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hpo.space import compile_space, load_schema_file
from hpo.space.draw import from_fraction
from hpo.space.ir import Parameter
from hpo.space.relations import relational_bounds
from hpo.space.static import grid_levels
from tests.space.space_schemas import tao_schema

ROOT = Path(__file__).resolve().parents[2]

MIXED = tao_schema({
    "crop.min": {"type": "int", "default": 4, "minimum": 2, "maximum": 8},
    "crop.max": {"type": "int", "default": 8, "minimum": 3, "maximum": 12, "math_cond": "> depends_on", "depends_on": "crop.min"},
    "size.low": {"type": "float", "default": 0.01, "minimum": 0.001, "maximum": 0.1},
    "size.high": {"type": "float", "default": 0.05, "minimum": 0.001, "maximum": 1.0, "math_cond": ">= depends_on",
                  "depends_on": "size.low", "x_scale": "log"},
    "width.base": {"type": "int", "default": 64, "minimum": 32, "maximum": 128, "math_cond": "/ 8"},
    "width.top": {"type": "int", "default": 128, "minimum": 32, "maximum": 256, "math_cond": ">= depends_on",
                  "depends_on": "width.base"},
    "train.epochs": {"type": "int", "default": 10, "minimum": 2, "maximum": 20},
    "train.warmup": {"type": "int", "default": 1, "minimum": 0, "maximum": 10, "math_cond": "/ 2", "depends_on": "train.epochs"},
    "train.milestones": {"type": "list_2", "default": [6, 8], "depends_on": "train.epochs"},
    "train.opt": {"type": "categorical", "default": "a", "enum": ["a", "b"], "option_weights": [3, 1]},
}, defaults=["crop.min", "crop.max", "size.low", "size.high", "width.base", "width.top", "train.epochs",
             "train.warmup", "train.milestones", "train.opt"])


@pytest.fixture(scope="module", params=["mixed", "default"])
def space(request):
    if request.param == "default":
        return compile_space(load_schema_file(ROOT / "schemas" / "train.schema.json"))
    return compile_space(MIXED)


def test_the_same_dimensions_for_every_configuration(space):
    from hpo.space import static

    shapes = set()
    for seed in range(40):
        recorder = static._Recorder(static.RandomDrawer(np.random.default_rng(seed)), [""])
        static._run(space, recorder, epoch_budget=12)
        shapes.add(tuple(recorder.dimensions))
    assert len(shapes) == 1
    assert shapes.pop() == space.static_dimensions(epoch_budget=12)


def test_decode_gives_back_the_sample_and_every_relation_holds(space):
    rng = np.random.default_rng(3)
    dims = {d.name: d for d in space.static_dimensions(epoch_budget=12)}
    for _ in range(300):
        values, point = space.sample_static(rng, epoch_budget=12)
        assert set(point) == set(dims) and all(dims[k].contains(v) for k, v in point.items())
        assert space.decode(point, epoch_budget=12) == values
        assert space.violations(values, epoch_budget=12) == []


def test_any_point_of_the_static_space_decodes_to_a_valid_configuration(space):
    """Samplers may propose any point of the box (grid corners, CMA-ES, BOHB): it always means something valid."""
    dims = space.static_dimensions(epoch_budget=12)
    rng = np.random.default_rng(11)
    for corner in range(200):
        point = {}
        for d in dims:
            if d.kind == "categorical":
                point[d.name] = d.choices[int(rng.integers(len(d.choices)))]
            else:
                levels = grid_levels(d, 3)
                point[d.name] = levels[int(rng.integers(len(levels)))] if corner % 2 else levels[-1]
        values = space.decode(point, epoch_budget=12)
        assert space.violations(values, epoch_budget=12) == []


def _child(kind: str, *, scale: str = "linear", step=None, relation: str = ">=") -> Parameter:
    return Parameter(name="c", kind=kind, default=5, low=3 if kind == "int" else 0.5, high=12 if kind == "int" else 8.0,
                     scale=scale, step=step, parent="p", relation=relation)


@pytest.mark.parametrize("child,parent", [
    (_child("int"), 5), (_child("int", relation=">"), 5), (_child("int", scale="log"), 4),
    (_child("int", step=2), 4), (_child("float", step=0.5), 2.2),
])
def test_the_fraction_map_is_onto_the_feasible_set_and_uniform_on_it(child, parent):
    low, high = relational_bounds(child.low, child.high, relation=child.relation, parent=parent,
                                  is_int=child.kind == "int", step=child.step)
    step = child.step or 1
    feasible = [low + k * step for k in range(int(round((high - low) / step)) + 1)]
    # onto: a fine sweep of u reaches every feasible value, and nothing else
    images = {from_fraction(child, u, low, high) for u in np.linspace(0.0, 1.0, 20_001)}
    assert images == set(feasible) or (child.scale == "log" and images == set(range(low, high + 1)))
    # distribution: u uniform gives each value its define-by-run probability
    rng = np.random.default_rng(0)
    draws = Counter(from_fraction(child, u, low, high) for u in rng.random(60_000))
    if child.scale == "log":  # Optuna's log-int: uniform in log over [low - 0.5, high + 0.5]
        edges = np.log(np.arange(low - 0.5, high + 1.5))
        expected = {v: (edges[i + 1] - edges[i]) / (edges[-1] - edges[0]) for i, v in enumerate(range(low, high + 1))}
    else:
        expected = {v: 1 / len(feasible) for v in feasible}
    for value, p in expected.items():
        assert abs(draws[value] / 60_000 - p) < 0.01, (value, draws[value] / 60_000, p)


@pytest.mark.parametrize("scale", ["linear", "log"])
def test_a_continuous_child_keeps_its_distribution(scale):
    child = _child("float", scale=scale)
    low, high = relational_bounds(child.low, child.high, relation=">=", parent=2.0, is_int=False, step=None)
    u = np.random.default_rng(1).random(40_000)
    values = np.array([from_fraction(child, x, low, high) for x in u])
    assert values.min() >= low and values.max() <= high
    position = (np.log(values) - math.log(low)) / (math.log(high) - math.log(low)) if scale == "log" else \
        (values - low) / (high - low)
    # uniform in the scale's own coordinate: every decile holds a tenth of the draws
    counts = np.histogram(position, bins=10, range=(0, 1))[0] / len(u)
    assert np.all(np.abs(counts - 0.1) < 0.01)
    assert from_fraction(child, 0.0, low, high) == low and from_fraction(child, 1.0, low, high) == high


def test_backend_static_spaces_cover_the_same_dimensions():
    from hpo.space.to_optuna import static_distributions
    from hpo.space.to_ray import static_param_space

    space = compile_space(MIXED)
    names = [d.name for d in space.static_dimensions(epoch_budget=12)]
    assert list(static_distributions(space, epoch_budget=12)) == names
    assert list(static_param_space(space, epoch_budget=12)) == names
    assert "crop.max#fraction" in names and "width.top#fraction" in names and "train.warmup" not in names
