"""Spec loading: template merge, overrides, TAO compatibility."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mask2former.config import config_from_dict
from skillkit.skill_dir import read_json_file
from skillkit.spec import apply_overrides, load_spec, parse_override, validate_spec
from skillkit.spec.validate import schema_problems


@pytest.mark.parametrize("text, expected", [
    ("a.b=10", ("a.b", 10)), ("a=1e-4", ("a", 1e-4)), ("a=2.5e-3", ("a", 0.0025)), ("a=true", ("a", True)),
    ("a=null", ("a", None)), ("a=[10, 20]", ("a", [10, 20])), ("a=\"001\"", ("a", "001")), ("a=text", ("a", "text")),
    ("a=", ("a", "")), ("a.b.c='x=y'", ("a.b.c", "x=y")),
])
def test_override_values(text: str, expected: tuple) -> None:
    assert parse_override(text) == expected


def test_merge_and_overrides(tmp_path: Path, repo_root: Path) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("train:\n  num_epochs: 3\n  optim:\n    lr: 1e-4\nmodel:\n  mode: semantic\n")
    spec = load_spec(spec_file, "train", ["train.num_epochs=5", "train.optim.milestones=[2,4]"], repo_root)
    assert spec["train"]["num_epochs"] == 5
    assert spec["train"]["optim"]["lr"] == pytest.approx(1e-4)
    assert spec["train"]["optim"]["milestones"] == [2, 4]
    assert spec["model"]["mode"] == "semantic"
    assert spec["model"]["mask_former"]["hidden_dim"] == 256  # template default kept
    config = config_from_dict(spec)
    assert config.train.optim.lr == pytest.approx(1e-4) and config.model.mode == "semantic"


def test_tao_train_spec_loads(tao_reference: Path, repo_root: Path) -> None:
    spec = load_spec(tao_reference / "references" / "spec_template_train.yaml", "train", [], repo_root)
    assert spec["wandb"]["project"] == "TAO Toolkit"


@pytest.mark.parametrize("action", ["evaluate", "inference", "export", "gen_trt_engine", "quantize"])
def test_tao_action_specs_load_once_paths_are_given(action: str, tao_reference: Path, repo_root: Path) -> None:
    overrides = {
        "evaluate": ["evaluate.checkpoint=/m.pth"], "inference": ["inference.checkpoint=/m.pth"],
        "export": ["export.checkpoint=/m.pth", "export.onnx_file=/m.onnx"],
        "gen_trt_engine": ["gen_trt_engine.onnx_file=/m.onnx", "gen_trt_engine.trt_engine=/m.engine"], "quantize": [],
    }[action]
    load_spec(tao_reference / "references" / f"spec_template_{action}.yaml", action, overrides, repo_root)


@pytest.mark.parametrize("action", ["evaluate", "inference", "gen_trt_engine"])
def test_tao_deploy_specs_load(action: str, tao_reference: Path, repo_root: Path) -> None:
    load_spec(tao_reference / "references" / f"spec_template_deploy_{action}.yaml", action, [], repo_root)


def test_tao_spec_with_every_section_loads_for_train(tao_reference: Path, repo_root: Path, tmp_path: Path) -> None:
    merged: dict = {}
    for action in ("train", "evaluate", "inference", "export", "gen_trt_engine", "quantize"):
        merged.update(yaml.safe_load((tao_reference / "references" / f"spec_template_{action}.yaml").read_text()))
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump(merged))
    spec = load_spec(path, "train", [], repo_root)  # other actions' '???' do not block training
    assert spec["export"]["checkpoint"] == "???"


def test_tao_reference_schema_works_with_our_validator(tao_reference: Path) -> None:
    schema = read_json_file(tao_reference / "schemas" / "train.schema.json")
    spec = yaml.safe_load((tao_reference / "references" / "spec_template_train.yaml").read_text())
    assert schema_problems(spec, schema) == []
    spec["train"]["optim"]["lr"] = 0.0
    spec["model"]["mask_former"]["hidden_dim"] = 250
    problems = schema_problems(spec, schema)
    assert any("train.optim.lr" in p and "> 0" in p for p in problems)
    assert any("hidden_dim" in p and "multiple of 8" in p for p in problems)


def test_apply_overrides_creates_sections() -> None:
    spec: dict = {}
    apply_overrides(spec, ["a.b.c=1", "a.b.d=x"])
    assert spec == {"a": {"b": {"c": 1, "d": "x"}}}


def test_validate_spec_accepts_nullable_fields(repo_root: Path) -> None:
    spec = load_spec(None, "train", ["train.iters_per_epoch=5", "model.backbone.swin.qk_scale=null"], repo_root)
    validate_spec(spec, "train", repo_root)


def test_quoted_infinity_bound_is_read() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "int", "default": 1, "minimum": "1", "maximum": "Infinity"}}}
    assert schema_problems({"n": 10**9}, schema) == []
    assert any("must be >= 1" in p for p in schema_problems({"n": 0}, schema))


def test_divided_parent_condition() -> None:
    schema = {"type": "object", "properties": {
        "epochs": {"type": "int", "default": 10},
        "warmup": {"type": "int", "default": 5, "math_cond": "/ 2", "depends_on": "epochs"},
        "rank": {"type": "int", "default": 8, "math_cond": "^ 2"},
    }}
    assert schema_problems({"epochs": 10, "warmup": 5, "rank": 16}, schema) == []
    problems = schema_problems({"epochs": 10, "warmup": 3, "rank": 12}, schema)
    assert any("warmup" in p and "10 // 2 = 5" in p for p in problems)
    assert any("rank" in p and "power of 2" in p for p in problems)
