"""Each documented meaning (hpo/space/README.md "Semantics"), on schemas shaped like other TAO models'."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from hpo.space import compile_space
from skillkit.errors import SearchSpaceError
from tests.space.space_schemas import tao_schema

N = 2000


def draws(space, n=N, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    out = [space.sample(rng, **kwargs) for _ in range(n)]
    for values in out:
        assert space.violations(values, epoch_budget=kwargs.get("epoch_budget")) == []
    return out


def one(leaf, name="p", **kwargs):
    return compile_space(tao_schema({name: leaf}), selection=[name], **kwargs)


# -- bounds ---------------------------------------------------------------------------------------

def test_strict_bounds_are_exclusive_and_inclusive_bounds_reachable():
    space = one({"type": "int", "default": 5, "minimum": 0, "maximum": 10, "math_cond": "> 0 < 10"})
    assert (space["p"].low, space["p"].high) == (1, 9)
    values = {d["p"] for d in draws(space, 500)}
    assert values == set(range(1, 10))
    inclusive = one({"type": "int", "default": 5, "minimum": 0, "maximum": 10, "math_cond": ">= 0 <= 10"})
    assert {d["p"] for d in draws(inclusive, 800)} == set(range(0, 11))


def test_compound_float_condition_and_excluded_zero():
    space = one({"type": "float", "default": 0.5, "minimum": -1.0, "maximum": 2.0, "math_cond": "> 0.0 <= 1.0"})
    p = space["p"]
    assert 0 < p.low < 0.5 / 100 and p.high == 1.0
    assert "0 is excluded" in p.why
    assert all(0 < d["p"] <= 1.0 for d in draws(space))


def test_not_equal_zero():
    at_bound = one({"type": "int", "default": 3, "minimum": 0, "maximum": 8, "math_cond": "!= 0"})
    assert at_bound["p"].low == 1
    inside = one({"type": "int", "default": 3, "minimum": -5, "maximum": 8, "math_cond": "!= 0"})
    assert (inside["p"].low, inside["p"].high) == (1, 8)  # the side holding the default
    assert "holding the default" in inside["p"].why
    negative = one({"type": "int", "default": -2, "minimum": -5, "maximum": 8, "math_cond": "!= 0"})
    assert (negative["p"].low, negative["p"].high) == (-5, -1)
    floats = one({"type": "float", "default": 0.5, "minimum": -1.0, "maximum": 1.0, "math_cond": "!= 0"})
    assert floats["p"].excluded == (0,)
    assert floats.violations({"p": 0.0}) and not floats.violations({"p": 1e-300})


def test_zero_lower_bound_with_greater_than_zero_gets_a_stated_small_bound():
    lr = one({"type": "float", "default": 2e-4, "minimum": 0.0, "maximum": 1.0, "math_cond": "> 0.0"}, name="train.optim.lr")
    p = lr["train.optim.lr"]
    assert p.low == pytest.approx(2e-7) and p.scale == "log"
    assert "min(default, max)/1000" in p.why and "log scale" in p.why
    no_default = one({"type": "float", "minimum": 0.0, "maximum": 0.5, "math_cond": "> 0"})
    assert no_default["p"].low == pytest.approx(0.5e-6) and "max/10^6" in no_default["p"].why
    values = [d["train.optim.lr"] for d in draws(lr)]
    assert min(values) > 0
    # TAO drew lr uniformly on [0, 1]: half the trials above 0.5. Log scale: most below 1e-2.
    assert np.median(values) < 1e-3 and np.mean(np.array(values) > 0.5) < 0.1


def test_momentum_like_zero_bound_stays_linear():
    space = one({"type": "float", "default": 0.9, "minimum": 0.0, "maximum": 1.0, "math_cond": "> 0.0"}, name="train.momentum")
    assert space["train.momentum"].scale == "linear"
    assert np.median([d["train.momentum"] for d in draws(space)]) > 0.3


def test_log_scale_for_ranges_spanning_two_decades_and_for_rates():
    wide = one({"type": "float", "default": 1.0, "minimum": 0.01, "maximum": 10.0})
    assert wide["p"].scale == "log" and "3.0 decades" in wide["p"].why
    narrow = one({"type": "float", "default": 1.0, "minimum": 0.5, "maximum": 10.0})
    assert narrow["p"].scale == "linear"
    wd = one({"type": "float", "default": 0.05, "minimum": 0.01, "maximum": 0.1}, name="optim.weight_decay")
    assert wd["optim.weight_decay"].scale == "log"
    ints = one({"type": "int", "default": 100, "minimum": 1, "maximum": 1000})
    assert ints["p"].scale == "log"
    stepped = one({"type": "int", "default": 128, "minimum": 8, "maximum": 4096, "math_cond": "/ 8"})
    assert stepped["p"].scale == "linear" and "cannot combine log with a step" in stepped["p"].why
    explicit = one({"type": "float", "default": 1.0, "minimum": 0.01, "maximum": 10.0, "x_scale": "linear"})
    assert explicit["p"].scale == "linear"
    # log draws: each decade equally likely
    values = np.log10([d["p"] for d in draws(wide)])
    assert abs(np.mean(values < -1) - 1 / 3) < 0.05


def test_infinite_maximum_gets_four_times_the_default():
    space = one({"type": "int", "default": 640, "minimum": 32, "maximum": "Infinity"})
    assert space["p"].high == 2560 and "4x default 640" in space["p"].why
    values = [d["p"] for d in draws(space)]
    assert max(values) > 640 * 2  # TAO collapsed the max to the default: nothing above 640 was ever tried
    no_default = one({"type": "int", "default": 0, "minimum": 0, "maximum": math.inf})
    assert no_default["p"].high == 4
    missing_min = one({"type": "float", "default": 2.0, "maximum": 100.0})
    assert missing_min["p"].low == 0.5
    with pytest.raises(SearchSpaceError, match="no finite maximum and no positive default"):
        one({"type": "float", "minimum": -math.inf, "maximum": math.inf})
    with pytest.raises(SearchSpaceError, match="no minimum and no positive default"):
        one({"type": "float", "default": -1.0, "maximum": 5.0})


def test_user_range_replaces_derived_bounds():
    space = one({"type": "int", "default": 640, "minimum": 32, "maximum": math.inf},
                custom_param_ranges={"p": {"max": 8000}})
    assert space["p"].high == 8000 and "custom_param_ranges" in space["p"].why


# -- multiples, powers, dependencies ------------------------------------------------------------

def test_multiples_of_n():
    space = one({"type": "int", "default": 256, "minimum": 60, "maximum": 1030, "math_cond": "/ 8"})
    assert (space["p"].low, space["p"].high, space["p"].step) == (64, 1024, 8)
    values = [d["p"] for d in draws(space)]
    assert all(v % 8 == 0 for v in values) and min(values) == 64 and max(values) == 1024
    with pytest.raises(SearchSpaceError, match="no multiple of 8"):
        one({"type": "int", "default": 3, "minimum": 1, "maximum": 7, "math_cond": "/ 8"})


def test_lora_rank_powers_of_two():
    space = one({"type": "int", "default": 16, "minimum": 4, "maximum": 128, "math_cond": "^ 2"}, name="model.lora.rank")
    p = space["model.lora.rank"]
    assert p.kind == "categorical" and p.choices == (4, 8, 16, 32, 64, 128)
    counts = Counter(d["model.lora.rank"] for d in draws(space))
    assert set(counts) == set(p.choices) and min(counts.values()) > N / 6 * 0.7
    with pytest.raises(SearchSpaceError, match="no power of 2"):
        one({"type": "int", "default": 5, "minimum": 5, "maximum": 7, "math_cond": "^ 2"})


def _crop_schema(max_crop_max=1024):
    return tao_schema({
        "dataset.crop.min_size": {"type": "int", "default": 384, "minimum": 128, "maximum": 1024, "math_cond": "/ 32", "parent_param": "TRUE"},
        "dataset.crop.max_size": {"type": "int", "default": 640, "minimum": 256, "maximum": max_crop_max, "math_cond": "> depends_on",
                                  "depends_on": "dataset.crop.min_size"},
    }, defaults=["dataset.crop.min_size", "dataset.crop.max_size"])


def test_crop_sizes_greater_than_parent_are_sampled_conditionally():
    space = compile_space(_crop_schema())
    assert space.names == ("dataset.crop.min_size", "dataset.crop.max_size")
    assert space.is_conditional and space["dataset.crop.max_size"].relation == ">"
    # the parent's max is lowered so every min_size leaves a larger max_size
    assert space["dataset.crop.min_size"].high == 992 and "max lowered" in space["dataset.crop.min_size"].why
    for values in draws(space):
        assert values["dataset.crop.max_size"] > values["dataset.crop.min_size"]
        assert values["dataset.crop.min_size"] % 32 == 0
    assert min(d["dataset.crop.max_size"] - d["dataset.crop.min_size"] for d in draws(space, 500)) == 1


def test_relation_with_an_unsearched_parent_uses_pinned_value_or_default():
    space = compile_space(_crop_schema(), selection=["dataset.crop.max_size"])
    assert not space.is_conditional
    assert space["dataset.crop.max_size"].low == 385 and space.fixed == {"dataset.crop.min_size": 384}
    pinned = compile_space(_crop_schema(), selection=["dataset.crop.max_size"], pinned={"dataset.crop.min_size": 960})
    assert pinned["dataset.crop.max_size"].low == 961
    with pytest.raises(SearchSpaceError, match="no value in .* satisfies '> dataset.crop.min_size'"):
        compile_space(_crop_schema(max_crop_max=512), selection=["dataset.crop.max_size"], pinned={"dataset.crop.min_size": 960})


def test_warmup_epochs_are_half_the_parent():
    schema = tao_schema({
        "train.num_epochs": {"type": "int", "default": 20, "minimum": 1, "maximum": 40},
        "train.warmup_epochs": {"type": "int", "default": 10, "minimum": 1, "maximum": 15, "math_cond": "/ 2",
                                "depends_on": "train.num_epochs"},
    }, defaults=["train.num_epochs", "train.warmup_epochs"])
    space = compile_space(schema)
    warmup = space["train.warmup_epochs"]
    assert warmup.is_derived and warmup.divisor == 2 and "derived" in warmup.why
    # parent clipped so parent // 2 stays in [1, 15]
    assert (space["train.num_epochs"].low, space["train.num_epochs"].high) == (2, 31)
    for values in draws(space, 500):
        assert values["train.warmup_epochs"] == values["train.num_epochs"] // 2
    fixed = compile_space(schema, selection=["train.warmup_epochs"], pinned={"train.num_epochs": 12})
    assert (fixed["train.warmup_epochs"].low, fixed["train.warmup_epochs"].high) == (6, 6)


def test_dependency_errors():
    with pytest.raises(SearchSpaceError, match="combines '> depends_on' with '/ 32'"):
        compile_space(tao_schema({
            "a": {"type": "int", "default": 64, "minimum": 32, "maximum": 512},
            "b": {"type": "int", "default": 96, "minimum": 32, "maximum": 512, "math_cond": "> depends_on / 32", "depends_on": "a"},
        }), selection=["a", "b"])
    with pytest.raises(SearchSpaceError, match="names no depends_on parameter"):
        one({"type": "int", "default": 5, "minimum": 1, "maximum": 9, "math_cond": "> depends_on"})
    schema = tao_schema({
        "a": {"type": "string", "default": "x"},
        "b": {"type": "int", "default": 5, "minimum": 1, "maximum": 9, "math_cond": "> depends_on", "depends_on": "a"},
        "c": {"type": "int", "default": 5, "minimum": 1, "maximum": 9, "math_cond": "> depends_on", "depends_on": "zz"},
        "d": {"type": "float", "default": 5, "minimum": 1, "maximum": 9, "math_cond": "/ 2", "depends_on": "c"},
    })
    with pytest.raises(SearchSpaceError, match="depends_on 'a' has type 'string'"):
        compile_space(schema, selection=["b"])
    with pytest.raises(SearchSpaceError, match="depends_on 'zz' is not a parameter"):
        compile_space(schema, selection=["c"])
    with pytest.raises(SearchSpaceError, match="derives an integer"):
        compile_space(schema, selection=["d"])


# -- categorical, bool, weights ------------------------------------------------------------------

def test_weighted_categorical_draws_match_the_weights():
    space = one({"type": "categorical", "default": "AdamW", "enum": ["AdamW", "SGD", "Adam"], "option_weights": [6, 3, 1]},
                name="train.optim.type")
    counts = Counter(d["train.optim.type"] for d in draws(space, 4000))
    assert counts["AdamW"] / 4000 == pytest.approx(0.6, abs=0.03)
    assert counts["SGD"] / 4000 == pytest.approx(0.3, abs=0.03)
    assert counts["Adam"] / 4000 == pytest.approx(0.1, abs=0.02)


def test_weights_as_mapping_zero_weight_removes_option_and_custom_weights():
    space = one({"type": "categorical", "default": "a", "enum": ["a", "b", "c"], "option_weights": {"a": 1, "b": 0, "c": 3}})
    assert space["p"].choices == ("a", "c") and space["p"].weights == (0.25, 0.75)
    custom = one({"type": "categorical", "default": "a", "enum": ["a", "b", "c"], "option_weights": [1, 1, 2]},
                 custom_param_ranges={"p": {"options": ["a", "c"]}})
    assert custom["p"].weights == pytest.approx((1 / 3, 2 / 3))
    reweighted = one({"type": "categorical", "default": "a", "enum": ["a", "b"]},
                     custom_param_ranges={"p": {"valid_options": "a,b", "option_weights": [3, 1]}})
    assert reweighted["p"].weights == (0.75, 0.25)


def test_bools_ordered_and_ordered_int():
    flag = one({"type": "bool", "default": "TRUE"})
    assert flag["p"].choices == (False, True) and flag["p"].default is True
    assert {d["p"] for d in draws(flag, 100)} == {False, True}
    weighted = one({"type": "bool", "default": False, "option_weights": {"true": 1, "false": 3}})
    assert np.mean([d["p"] for d in draws(weighted, 2000)]) == pytest.approx(0.25, abs=0.04)
    ordered_int = one({"type": "ordered_int", "default": 3, "valid_options": "1,3,5,7"})
    assert ordered_int["p"].choices == (1, 3, 5, 7)
    assert all(isinstance(d["p"], int) for d in draws(ordered_int, 50))
    ordered = one({"type": "ordered", "default": "small", "enum": ["small", "medium", "large"]})
    assert "ordered options" in ordered["p"].why


@pytest.mark.parametrize(
    "leaf, custom, message",
    [
        ({"type": "categorical", "enum": ["a", "b"], "option_weights": [1]}, None, "option_weights has 1 entries for 2 options"),
        ({"type": "categorical", "enum": ["a", "b"], "option_weights": [1, -1]}, None, "must be a finite number >= 0"),
        ({"type": "categorical", "enum": ["a", "b"], "option_weights": [0, 0]}, None, "gives every option weight 0"),
        ({"type": "categorical", "enum": ["a", "b"], "option_weights": {"z": 1}}, None, "names options"),
        ({"type": "categorical", "enum": ["a", "b"]}, {"options": ["a", "q"]}, r"options \['q'\] are not allowed"),
        ({"type": "categorical", "enum": ["a", "a"]}, None, "repeat a value"),
        ({"type": "ordered_int", "valid_options": "1,x"}, None, "'x' is not an integer"),
        ({"type": "categorical"}, None, "no options to choose from"),
    ],
)
def test_option_errors(leaf, custom, message):
    with pytest.raises(SearchSpaceError, match=message):
        one({"default": None, **leaf}, custom_param_ranges={"p": custom} if custom else None)


# -- user ranges must lie inside the schema --------------------------------------------------------

@pytest.mark.parametrize(
    "custom, message",
    [
        ({"min": 0.0}, r"custom_param_ranges min = 0.0 lies outside the schema's limits \(0, 1\]"),
        ({"max": 2.0}, r"custom_param_ranges max = 2.0 lies outside the schema's limits \(0, 1\]"),
        ({"min": 0.5, "max": 0.1}, "min 0.5 is greater than max 0.1"),
        ({"min": "abc"}, "must be a number"),
        ({"minimum_value": 1}, "unknown key 'minimum_value'"),
        ({"scale": "cubic"}, "scale must be 'log' or 'linear'"),
    ],
)
def test_user_ranges_outside_schema_limits_are_errors(custom, message):
    with pytest.raises(SearchSpaceError, match=message):
        one({"type": "float", "default": 0.1, "minimum": 0.0, "maximum": 1.0, "math_cond": "> 0.0"},
            name="train.optim.lr", custom_param_ranges={"train.optim.lr": custom})


def test_user_math_cond_adds_to_the_schemas_and_user_options_for_numbers():
    space = one({"type": "int", "default": 256, "minimum": 64, "maximum": 1024, "math_cond": "/ 8"},
                custom_param_ranges={"p": {"math_cond": "/ 64", "max": 512}})
    assert space["p"].step == 64 and space["p"].high == 512
    options = one({"type": "int", "default": 256, "minimum": 64, "maximum": 1024, "math_cond": "/ 8"},
                  custom_param_ranges={"p": {"options": [128, 256], "weights": [1, 3]}})
    assert options["p"].choices == (128, 256) and options["p"].weights == (0.25, 0.75)
    with pytest.raises(SearchSpaceError, match="option 100 violates math_cond"):
        one({"type": "int", "default": 256, "minimum": 64, "maximum": 1024, "math_cond": "/ 8"},
            custom_param_ranges={"p": {"options": [100]}})
    with pytest.raises(SearchSpaceError, match="option 2000 lies outside"):
        one({"type": "int", "default": 256, "minimum": 64, "maximum": 1024},
            custom_param_ranges={"p": {"options": [2000]}})
    with pytest.raises(SearchSpaceError, match="range for 'other', which is not searched"):
        one({"type": "int", "default": 256, "minimum": 64, "maximum": 1024}, custom_param_ranges={"other": {"max": 3}})


def test_x_search_range_must_lie_inside_limits():
    hinted = one({"type": "float", "default": 2e-4, "minimum": 0.0, "maximum": 1.0, "math_cond": "> 0", "x_search_range": [1e-5, 1e-3]},
                 name="train.optim.lr")
    assert (hinted["train.optim.lr"].low, hinted["train.optim.lr"].high) == (1e-5, 1e-3)
    with pytest.raises(SearchSpaceError, match="x_search_range maximum = 2.0 lies outside"):
        one({"type": "float", "default": 0.5, "minimum": 0.0, "maximum": 1.0, "x_search_range": [0.1, 2.0]})


# -- list kinds -----------------------------------------------------------------------------------

def _milestone_schema(**extra):
    return tao_schema({
        "train.num_epochs": {"type": "int", "default": 100, "minimum": 1, "maximum": math.inf},
        "train.optim.milestones": {"type": "list", "default": [88, 96], **extra},
    })


@pytest.mark.parametrize("budget", [2, 3, 5, 9, 27, 100])
def test_milestones_fire_inside_the_epoch_budget(budget):
    space = compile_space(_milestone_schema(), selection=["train.optim.milestones"])
    p = space["train.optim.milestones"]
    assert p.kind == "epoch_list" and p.parent == "train.num_epochs" and space.fixed == {"train.num_epochs": 100}
    for values in draws(space, 300, epoch_budget=budget):
        milestones = values["train.optim.milestones"]
        assert milestones == sorted(set(milestones)) and len(milestones) <= 2
        assert all(1 <= m <= budget - 1 for m in milestones) and milestones  # they fire before training ends


def test_milestones_follow_the_sampled_epoch_count_without_a_budget():
    schema = _milestone_schema(depends_on="train.num_epochs", x_min_items=1, x_max_items=3)
    space = compile_space(schema, selection=["train.num_epochs", "train.optim.milestones"],
                          custom_param_ranges={"train.num_epochs": {"min": 4, "max": 30}})
    assert space.names == ("train.num_epochs", "train.optim.milestones")
    lengths = set()
    for values in draws(space, 500):
        lengths.add(len(values["train.optim.milestones"]))
        assert all(1 <= m < values["train.num_epochs"] for m in values["train.optim.milestones"])
    assert lengths == {1, 2, 3}
    with pytest.raises(SearchSpaceError, match="fractions of the epoch budget"):
        compile_space(schema, selection=["train.optim.milestones"], custom_param_ranges={"train.optim.milestones": {"max": 1.5}})


def test_list_kinds():
    schema = tao_schema({
        "model.freeze_blocks": {"type": "list_1_backbone", "default": [0, 1], "minimum": 0, "maximum": 5},
        "aug.scales": {"type": "list_2", "default": [480, 512], "x_items": {"minimum": 320, "maximum": 800}, "math_cond": "/ 32",
                       "x_min_items": 3, "x_max_items": 6},
        "aug.kernel": {"type": "list_3", "default": [5, 5], "minimum": 3, "maximum": 15},
        "optim.betas": {"type": "list_2", "default": [0.9, 0.999], "minimum": [0.8, 0.9], "maximum": [0.95, 0.9999]},
        "lora.targets": {"type": "subset_list", "default": ["q"], "enum": ["q", "k", "v", "o"], "x_min_items": 1},
        "lora.save": {"type": "optional_list", "default": None, "valid_options": ["head", "embed"]},
    })
    space = compile_space(schema, selection=list(read_names(schema)))
    kinds = {p.name: p.kind for p in space.parameters}
    assert kinds == {"model.freeze_blocks": "int_range_list", "aug.scales": "sorted_int_list", "aug.kernel": "repeated_int_list",
                     "optim.betas": "float_list", "lora.targets": "subset_list", "lora.save": "optional_list"}
    seen_none = seen_list = False
    for values in draws(space, 500):
        blocks = values["model.freeze_blocks"]
        assert blocks == list(range(blocks[0], blocks[-1] + 1)) and 0 <= blocks[0] and blocks[-1] <= 5
        scales = values["aug.scales"]
        assert 3 <= len(scales) <= 6 and scales == sorted(scales) and all(s % 32 == 0 and 320 <= s <= 800 for s in scales)
        assert values["aug.kernel"][0] == values["aug.kernel"][1] and 3 <= values["aug.kernel"][0] <= 15
        b1, b2 = values["optim.betas"]
        assert 0.8 <= b1 <= 0.95 and 0.9 <= b2 <= 0.9999
        assert 1 <= len(values["lora.targets"]) and set(values["lora.targets"]) <= {"q", "k", "v", "o"}
        seen_none |= values["lora.save"] is None
        seen_list |= values["lora.save"] == ["head", "embed"]
    assert seen_none and seen_list


def read_names(schema):
    from hpo.space import read_schema

    return read_schema(schema).leaves


def test_subset_list_weights_are_inclusion_probabilities():
    # min(1, n/2 * w_i): n = 3, normalised weights (2/3, 1/6, 1/6)
    space = one({"type": "subset_list", "default": [], "enum": ["a", "b", "c"], "option_weights": [4, 1, 1]})
    assert space["p"].weights == pytest.approx((1.0, 0.25, 0.25))
    values = draws(space, 1000)
    assert all("a" in d["p"] for d in values)
    assert np.mean(["b" in d["p"] for d in values]) == pytest.approx(0.25, abs=0.05)
    assert one({"type": "subset_list", "enum": ["a", "b"]})["p"].weights is None  # 1/2 each


@pytest.mark.parametrize(
    "leaf, message",
    [
        ({"type": "list", "default": [640]}, "plain 'list', which has no sampling rule"),
        ({"type": "list_1_normal", "default": [1]}, "needs element bounds"),
        ({"type": "list_2", "default": [1], "depends_on": "q", "minimum": 1, "maximum": 5}, "only for epoch lists"),
        ({"type": "optional_list", "enum": ["a"], "option_weights": [1]}, "mean nothing for an optional_list"),
        ({"type": "subset_list", "enum": ["a"], "x_min_items": 2}, "at least 2 of only 1 options"),
        ({"type": "list_2", "minimum": [0.1], "maximum": [0.2, 0.3]}, "differ in length"),
        ({"type": "list_3", "minimum": 1, "maximum": 64, "math_cond": "^ 2"}, "not supported on list elements"),
    ],
)
def test_list_errors(leaf, message):
    schema = tao_schema({"p": leaf, "q": {"type": "int", "default": 5, "minimum": 1, "maximum": 10}})
    with pytest.raises(SearchSpaceError, match=message):
        compile_space(schema, selection=["p"])
