"""Property tests: generated TAO-format schemas of every type and condition form.

For each generated schema, compilation either succeeds or raises our `SearchSpaceError` (nothing
else), and every sample of a compiled space (a) passes the spec validator of `hpo.spec` (an
independent implementation of the schema's rules: types, bounds, enums, math_cond, relations to
the depends_on parent, derived values), (b) satisfies the compiled space's own checks, and
(c) places epoch lists inside the epoch budget.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hpo.space import compile_space
from skillkit.errors import SearchSpaceError
from skillkit.spec.validate import schema_problems
from tests.space.space_schemas import spec_from, tao_schema

SAMPLES_PER_SCHEMA = 40
BUDGETS = (None, 1, 2, 5, 13)


def _numeric_leaf(data, *, is_int: bool) -> dict:
    number = st.integers(-50, 200) if is_int else st.floats(-50, 200, allow_nan=False).map(lambda v: round(v, 3))
    low = data.draw(st.one_of(st.none(), st.just(-math.inf), number), label="minimum")
    base = low if low is not None and math.isfinite(low) else 0
    width = data.draw(st.integers(0, 5000) if is_int else st.floats(0, 5000, allow_nan=False), label="width")
    high = data.draw(st.one_of(st.none(), st.just(math.inf), st.just(base + width)), label="maximum")
    top = base + width if high not in (None, math.inf) else base + 300
    default = data.draw(st.one_of(st.none(), st.integers(int(math.ceil(base)), int(math.floor(top))) if is_int
                                  else st.floats(base, top, allow_nan=False)), label="default")
    cond = data.draw(st.sampled_from([
        None, "> 0", ">0", "> 0.0", ">= 0", ">=1", "!= 0", "> 0.0 <= 1.0", "/ 4", "/ 8", "^ 2", "^ 3",
        f"> {base}", f"< {top}", f">= {base + 1} <= {top}", f"!= {base}",
    ]), label="math_cond")
    leaf: dict = {"type": data.draw(st.sampled_from(["int", "integer"] if is_int else ["float", "number"]))}
    for key, value in (("minimum", low), ("maximum", high), ("default", default), ("math_cond", cond)):
        if value is not None:
            leaf[key] = value
    if data.draw(st.booleans(), label="x_search_range?"):
        lo = data.draw(st.floats(base, top, allow_nan=False), label="hint low")
        hi = data.draw(st.floats(lo, top, allow_nan=False), label="hint high")
        leaf["x_search_range"] = [math.ceil(lo), math.floor(hi)] if is_int else [lo, hi]
    if data.draw(st.booleans(), label="anyOf?"):
        leaf = {"anyOf": [{"type": "null"}, leaf], "default": leaf.get("default"), "title": "union"}
    return leaf


def _options(data, prefix: str) -> list:
    count = data.draw(st.integers(1, 5), label="options")
    return [f"{prefix}{i}" for i in range(count)]


def _weights(data, count: int):
    kind = data.draw(st.sampled_from(["none", "list", "zeros"]), label="weights")
    if kind == "none":
        return None
    weights = data.draw(st.lists(st.floats(0.1, 10), min_size=count, max_size=count), label="weight values")
    if kind == "zeros" and count > 1:
        weights[0] = 0
    return weights


def _leaf(data, name: str, numeric_names: list[str]) -> dict:
    kind = data.draw(st.sampled_from([
        "int", "float", "categorical", "ordered", "ordered_int", "bool", "string_enum", "subset_list", "optional_list",
        "list_1_normal", "list_3", "list_2", "relational", "derived",
    ]), label="kind")
    if kind in ("relational", "derived") and not numeric_names:
        kind = "int"
    if kind in ("int", "float"):
        return _numeric_leaf(data, is_int=kind == "int")
    if kind in ("categorical", "ordered", "string_enum"):
        options = _options(data, "opt")
        leaf = {"type": "string" if kind == "string_enum" else kind, "enum": options, "default": options[0]}
        weights = _weights(data, len(options))
        if weights is not None:
            leaf["option_weights"] = weights
        return leaf
    if kind == "ordered_int":
        values = sorted(data.draw(st.sets(st.integers(-5, 64), min_size=1, max_size=5), label="ints"))
        return {"type": "ordered_int", "valid_options": ",".join(map(str, values)), "default": values[0]}
    if kind == "bool":
        leaf = {"type": "bool", "default": data.draw(st.booleans())}
        if data.draw(st.booleans(), label="bool weights?"):
            leaf["option_weights"] = {"true": data.draw(st.floats(0.1, 5)), "false": data.draw(st.floats(0.1, 5))}
        return leaf
    if kind in ("subset_list", "optional_list"):
        options = _options(data, "m")
        leaf = {"type": kind, "default": None, "valid_options": options}
        if kind == "subset_list":
            leaf["x_min_items"] = data.draw(st.integers(0, len(options)), label="min items")
            weights = _weights(data, len(options))
            if weights is not None:
                leaf["option_weights"] = weights
        return leaf
    if kind in ("list_1_normal", "list_3", "list_2"):
        low = data.draw(st.integers(0, 50), label="element min")
        high = low + data.draw(st.integers(0, 100), label="element width")
        leaf = {"type": kind, "default": [low], "x_items": {"type": "int", "minimum": low, "maximum": high}}
        if kind == "list_2":
            leaf["math_cond"] = data.draw(st.sampled_from([None, "/ 2", "/ 16"]))
            leaf["x_min_items"] = data.draw(st.integers(0, 3), label="min items")
            leaf["x_max_items"] = leaf["x_min_items"] + data.draw(st.integers(0, 3), label="extra items")
            if leaf["math_cond"] is None:
                del leaf["math_cond"]
        return leaf
    parent = data.draw(st.sampled_from(numeric_names), label="parent")
    if kind == "derived":
        divisor = data.draw(st.sampled_from([2, 4, 8]), label="divisor")
        return {"type": "int", "default": 0, "minimum": 0, "maximum": data.draw(st.sampled_from([math.inf, 10, 200])),
                "math_cond": f"/ {divisor}", "depends_on": parent}
    leaf = _numeric_leaf(data, is_int=data.draw(st.booleans(), label="relational int?"))
    if "anyOf" in leaf:
        leaf = leaf["anyOf"][1]
    relation = data.draw(st.sampled_from([">", ">=", "<", "<="]), label="relation")
    extra = leaf.get("math_cond") if leaf.get("math_cond", "").startswith("/") else ""
    leaf["math_cond"] = f"{relation} depends_on {extra}".strip()
    leaf["depends_on"] = parent
    return leaf


@st.composite
def generated_schemas(draw):
    data = _Draw(draw)
    count = draw(st.integers(1, 5), label="leaves")
    leaves: dict = {"train.num_epochs": {"type": "int", "default": draw(st.integers(1, 40)), "minimum": 1, "maximum": math.inf}}
    numeric_names: list[str] = []
    for index in range(count):
        name = f"sec{index % 2}.p{index}"
        leaf = _leaf(data, name, numeric_names)
        leaves[name] = leaf
        inner = leaf["anyOf"][1] if "anyOf" in leaf else leaf
        if inner.get("type") in ("int", "integer", "float", "number") and "depends_on" not in inner:
            numeric_names.append(name)
    selection = sorted(name for name in leaves if name != "train.num_epochs")
    if draw(st.booleans(), label="milestones?"):
        leaves["train.optim.milestones"] = {"type": "list", "default": [3, 6], "x_items": {"type": "int", "minimum": 1},
                                            "x_min_items": 0, "x_max_items": draw(st.integers(1, 4))}
        selection.append("train.optim.milestones")
    if draw(st.booleans(), label="search epochs?"):
        leaves["train.num_epochs"]["x_search_range"] = [1, 30]
        selection.append("train.num_epochs")
    schema = tao_schema(leaves, defaults=selection, disabled=["sec0", "sec1"], stray_disabled=["train"])
    budget = draw(st.sampled_from(BUDGETS), label="epoch budget")
    return schema, selection, budget


class _Draw:
    """Adapter so the leaf builders can use `data.draw(strategy, label=...)` inside `st.composite`."""

    def __init__(self, draw) -> None:
        self._draw = draw

    def draw(self, strategy, label=None):
        return self._draw(strategy, label=label)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(generated_schemas(), st.integers(0, 2**32 - 1))
def test_generated_schemas_compile_or_fail_clearly_and_samples_obey_every_rule(case, seed):
    schema, selection, budget = case
    try:
        space = compile_space(schema, selection=selection)
    except SearchSpaceError as error:
        assert str(error)  # a message, never an empty error
        event("rejected with SearchSpaceError")
        return
    event(f"compiled ({'conditional' if space.is_conditional else 'unconditional'})")
    rng = np.random.default_rng(seed)
    for _ in range(SAMPLES_PER_SCHEMA):
        values = space.sample(rng, epoch_budget=budget)
        assert space.violations(values, epoch_budget=budget) == []
        spec_values = dict(values)
        if budget is not None and "train.num_epochs" not in values:
            spec_values["train.num_epochs"] = budget  # the trial trains `budget` epochs
        problems = schema_problems(spec_from(schema, spec_values), schema)
        assert problems == [], (problems, values)
        if "train.optim.milestones" in values:
            epochs = budget if budget is not None else spec_values.get("train.num_epochs", schema["default"]["train"]["num_epochs"])
            milestones = values["train.optim.milestones"]
            assert milestones == sorted(set(milestones)) and all(1 <= m <= epochs - 1 for m in milestones)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(generated_schemas(), st.integers(0, 2**32 - 1))
def test_generated_spaces_round_trip_and_perturb_inside_the_rules(case, seed):
    schema, selection, budget = case
    try:
        space = compile_space(schema, selection=selection)
    except SearchSpaceError:
        return
    from hpo.space import SearchSpace

    again = SearchSpace.from_yaml(space.to_yaml())
    assert again == space
    rng = np.random.default_rng(seed)
    values = space.sample(rng)
    assert again.sample(np.random.default_rng(seed)) == space.sample(np.random.default_rng(seed))
    for _ in range(10):
        values = space.perturb(values, rng)
        assert space.violations(values) == []


@pytest.mark.parametrize("kind", ["float", "int"])
def test_a_one_value_range_whose_value_math_cond_excludes_is_refused(kind: str) -> None:
    """The case the property test above found (fresh-clone run at c295ca3): x_search_range [0, 0] with
    math_cond '!= 0' compiled to [0, 0] and sampled the excluded 0 (the first end's check dropped 0 from the
    excluded list before the second end was checked). Both ends are exclusive now: an empty range, refused."""
    leaf = {"type": kind, "math_cond": "!= 0", "x_search_range": [0, 0]}
    schema = {"type": "object",
              "properties": {"train": {"type": "collection", "default": {"num_epochs": 1}, "automl_enabled": False,
                                       "properties": {"num_epochs": {"type": "int", "default": 1, "minimum": 1}}},
                             "sec0": {"type": "collection", "default": {"p0": None}, "automl_enabled": False,
                                      "properties": {"p0": leaf}}},
              "default": {"train": {"num_epochs": 1}, "sec0": {"p0": None}},
              "automl_default_parameters": ["sec0.p0"], "automl_disabled_parameters": ["sec0"],
              "x_tao_schema": {"action": "train", "model": "testnet", "schema_version": 1}}
    with pytest.raises(SearchSpaceError, match="sec0.p0"):
        compile_space(schema, selection=["sec0.p0"])
