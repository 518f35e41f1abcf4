"""Reading TAO's schema quirks, and choosing which parameters a sweep searches."""

from __future__ import annotations

import json
import math

import pytest

from hpo.space import compile_space, load_schema_file, read_schema
from hpo.space.selection import topological_order
from skillkit.errors import SchemaError, SearchSpaceError
from tests.space.space_schemas import tao_schema

LEAVES = {
    "train.optim.lr": {"type": "float", "default": 2e-4, "minimum": 0.0, "maximum": 1.0, "math_cond": "> 0.0", "automl_enabled": "TRUE"},
    "train.optim.momentum": {"type": "float", "default": 0.9, "minimum": 0.0, "maximum": 1.0},
    "train.optim.milestones": {"type": "list", "default": [8, 9], "automl_enabled": "FALSE"},
    "train.num_epochs": {"type": "int", "default": 10, "minimum": 1, "maximum": math.inf},
    "model.hidden_dim": {"type": "int", "default": 256, "minimum": 64, "maximum": 1024, "math_cond": "/ 8"},
    "model.name": {"type": "string", "default": "swin"},
    "model.extra": {"type": "dict", "default": {}},
}


def test_infinity_tokens_from_json_files(tmp_path):
    path = tmp_path / "train.schema.json"
    path.write_text('{"type": "object", "properties": {"n": {"type": "int", "default": 5, "minimum": 1, '
                    '"maximum": Infinity}, "m": {"type": "float", "default": -1.0, "minimum": -Infinity, "maximum": 0}},'
                    ' "automl_default_parameters": ["n"]}')
    schema = load_schema_file(path)
    info = read_schema(schema)
    assert info.leaves["n"].get("maximum") == math.inf
    assert info.leaves["m"].get("minimum") == -math.inf
    space = compile_space(schema)
    assert space["n"].high == 20  # 4 x default


def test_bad_schema_files_are_schema_errors(tmp_path):
    with pytest.raises(SchemaError, match="does not exist"):
        load_schema_file(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SchemaError, match="not valid JSON"):
        load_schema_file(broken)
    with pytest.raises(SearchSpaceError, match="needs a 'properties' object"):
        read_schema({"type": "object"})


def test_reader_flattens_collections_and_takes_defaults_from_the_collection():
    schema = tao_schema(LEAVES)
    del schema["properties"]["train"]["properties"]["optim"]["properties"]["momentum"]["default"]
    info = read_schema(schema)
    assert set(info.leaves) == set(LEAVES)
    assert {"train", "train.optim", "model"} <= info.collections
    assert info.leaves["train.optim.momentum"].default == 0.9  # from the collection's `default` mapping


def test_string_booleans_and_default_fallback_to_automl_enabled():
    info = read_schema(tao_schema(LEAVES))
    assert info.default_parameters == ("train.optim.lr",)  # no lists anywhere: automl_enabled "TRUE"
    assert "train.optim.milestones" in info.disabled_parameters  # automl_enabled "FALSE"


def test_lists_at_every_level_in_any_order_relative_paths_and_the_stray_pseudo_property():
    schema = tao_schema(LEAVES, defaults=["train.optim.lr", "model.hidden_dim"], disabled=["train", "model"],
                        stray_disabled=["train.optim.momentum"])
    schema["properties"]["train"]["properties"]["optim"]["automl_default_parameters"] = ["momentum", "train.optim.lr"]
    info = read_schema(schema)
    assert info.default_parameters == ("model.hidden_dim", "train.optim.lr", "train.optim.momentum")
    assert {"train", "model", "train.optim.momentum"} <= info.disabled_parameters
    # Reversing list order changes nothing.
    schema["automl_default_parameters"].reverse()
    assert read_schema(schema).default_parameters == info.default_parameters


def test_any_of_union_reads_first_non_null_branch_with_outer_keys_winning():
    schema = tao_schema({
        "model.rank": {"anyOf": [{"type": "null"}, {"type": "int", "minimum": 1, "maximum": 64}], "default": 8,
                       "math_cond": "^ 2", "title": "LoRA rank"},
        "model.scale": {"type": ["number", "null"], "default": 0.5, "minimum": 0.1, "maximum": 1.0},
        "model.flag": {"anyOf": [{"type": "boolean"}, {"type": "string"}], "default": True},
    })
    info = read_schema(schema)
    rank = info.leaves["model.rank"]
    assert rank.type == "int" and rank.nullable and rank.get("maximum") == 64 and rank.get("math_cond") == "^ 2"
    assert info.leaves["model.scale"].type == "float" and info.leaves["model.scale"].nullable
    assert info.leaves["model.flag"].type == "bool" and info.leaves["model.flag"].union_types == ("bool", "string")


def test_missing_types_are_inferred():
    schema = {"type": "object", "properties": {
        "a": {"default": 3}, "b": {"default": 0.5}, "c": {"default": True}, "d": {"enum": ["x", "y"], "default": "x"},
        "e": {"properties": {"f": {"default": "s"}}},
    }}
    info = read_schema(schema)
    assert [info.leaves[k].type for k in "abcd"] == ["int", "float", "bool", "categorical"]
    assert info.leaves["e.f"].type == "string" and "e" in info.collections


# -- selection -------------------------------------------------------------------------------------

def _schema():
    return tao_schema(LEAVES, defaults=["train.optim.lr", "model.hidden_dim", "train.optim.milestones"],
                      disabled=["train", "model", "train.optim", "train.optim.milestones"])


def test_disabled_collections_do_not_disable_their_leaves():
    space = compile_space(_schema())
    # "train"/"model"/"train.optim" are disabled; their default leaves are still searched.
    assert space.names == ("model.hidden_dim", "train.optim.lr")  # milestones (exact path) is disabled


def test_explicit_selection_replaces_defaults_and_disabled_needs_the_override():
    space = compile_space(_schema(), selection=["train.optim.momentum"])
    assert space.names == ("train.optim.momentum",)
    with pytest.raises(SearchSpaceError, match="'train.optim.milestones' is in the schema's automl_disabled_parameters"):
        compile_space(_schema(), selection=["train.optim.milestones"])
    space = compile_space(_schema(), selection=["train.optim.milestones"], override_automl_disabled_params=True)
    assert space["train.optim.milestones"].kind == "epoch_list"
    with_override = compile_space(_schema(), override_automl_disabled_params=True)
    assert "train.optim.milestones" in with_override


def test_pinned_parameters_leave_the_defaults_and_conflict_with_explicit_selection():
    space = compile_space(_schema(), pinned={"train.optim.lr": 1e-3})
    assert space.names == ("model.hidden_dim",)
    with pytest.raises(SearchSpaceError, match="also pinned in the spec"):
        compile_space(_schema(), selection=["train.optim.lr"], pinned={"train.optim.lr": 1e-3})
    with pytest.raises(SearchSpaceError, match="leave nothing to search"):
        compile_space(_schema(), pinned={"train.optim.lr": 1e-3, "model.hidden_dim": 64})


@pytest.mark.parametrize(
    "selection, message",
    [
        (["train.optim.lrr"], r"'train.optim.lrr' does not exist in the schema. Did you mean 'train.optim.lr'"),
        (["train.optim"], "'train.optim' is a collection"),
        (["model.name"], "'model.name' is a free-text string"),
        (["model.extra"], "'model.extra' has type 'dict' and cannot be searched"),
        ([], "automl_hyperparameters is empty"),
        ("train.optim.lr", "must be a list"),
    ],
)
def test_selection_errors_name_the_parameter(selection, message):
    with pytest.raises(SearchSpaceError, match=message):
        compile_space(_schema(), selection=selection)


def test_unknown_default_parameter_in_schema_is_an_error():
    schema = tao_schema(LEAVES, defaults=["train.optim.gone"])
    with pytest.raises(SearchSpaceError, match="automl_default_parameters entry 'train.optim.gone' does not exist"):
        compile_space(schema)


def test_topological_order_puts_parents_first_and_detects_cycles():
    order = topological_order(["c", "b", "a", "d"], {"a": "d", "b": None, "c": "a", "d": None})
    assert order.index("d") < order.index("a") < order.index("c")
    assert order == ["b", "d", "a", "c"]
    with pytest.raises(SearchSpaceError, match="cycle"):
        topological_order(["a", "b"], {"a": "b", "b": "a"})


def test_relational_dependency_cycle_in_a_schema_is_an_error():
    schema = tao_schema({
        "a": {"type": "int", "default": 5, "minimum": 1, "maximum": 10, "math_cond": "> depends_on", "depends_on": "b"},
        "b": {"type": "int", "default": 5, "minimum": 1, "maximum": 10, "math_cond": "> depends_on", "depends_on": "a"},
    }, defaults=["a", "b"])
    with pytest.raises(SearchSpaceError, match="cycle"):
        compile_space(schema)


def test_reference_schema_json_round_trip_is_stable(tao_reference):
    schema = json.loads((tao_reference / "schemas" / "train.schema.json").read_text())
    first = compile_space(schema).to_yaml()
    schema["automl_default_parameters"] = sorted(schema["automl_default_parameters"], reverse=True)
    assert compile_space(schema).to_yaml() == first  # TAO's random list order does not change the output
