"""Schema/template generation: deterministic, TAO-shaped, and `check` catches stale files."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from hpo.cli import main
from hpo.skill.generate import generated_files, stale_files, write_generated
from mask2former.config import default_spec
from skillkit.skill_dir import SkillDir
from skillkit.spec import validate_spec

TAO_AUTOML_TEN = {
    "train.optim.lr", "train.optim.backbone_multiplier", "train.optim.momentum", "train.optim.weight_decay",
    "model.mask_former.hidden_dim", "model.mask_former.dec_layers", "model.mask_former.num_object_queries",
    "dataset.augmentation.train_max_size", "dataset.augmentation.test_min_size", "dataset.augmentation.test_max_size",
}


def test_committed_files_are_current(repo_root: Path) -> None:
    assert stale_files(SkillDir(repo_root)) == []


def test_generation_is_byte_identical(repo_root: Path) -> None:
    first = generated_files(SkillDir(repo_root))
    second = generated_files(SkillDir(repo_root))
    assert first == second
    assert len(first) == 16


def test_train_schema_is_tao_shaped(repo_root: Path) -> None:
    text = (repo_root / "schemas" / "train.schema.json").read_text()
    schema = json.loads(text)
    for key in ("type", "properties", "default", "required", "popular", "automl_default_parameters",
                "automl_disabled_parameters", "x_tao_schema"):
        assert key in schema, key
    assert "Infinity" in text  # unbounded maxima use TAO's token
    assert TAO_AUTOML_TEN <= set(schema["automl_default_parameters"])
    assert schema["automl_default_parameters"] == sorted(schema["automl_default_parameters"])
    optim = schema["properties"]["train"]["properties"]["optim"]
    assert optim["type"] == "collection"
    assert optim["properties"]["lr"]["type"] == "float"
    assert optim["properties"]["lr_scheduler"]["type"] == "categorical"
    assert optim["properties"]["milestones"]["type"] == "list"
    assert schema["properties"]["model"]["properties"]["mask_former"]["properties"]["hidden_dim"]["math_cond"] == "/ 8"
    assert schema["properties"]["train"]["properties"]["num_epochs"]["maximum"] == float("inf")
    assert schema["x_tao_schema"]["action"] == "train"


def test_default_spec_validates_against_generated_schema(repo_root: Path) -> None:
    validate_spec(default_spec(), "train", repo_root)


def test_templates_hold_action_sections(repo_root: Path) -> None:
    train = yaml.safe_load((repo_root / "references" / "spec_template_train.yaml").read_text())
    assert "evaluate" not in train and "train" in train
    export = yaml.safe_load((repo_root / "references" / "spec_template_export.yaml").read_text())
    assert export["export"]["input_width"] == 960 and export["export"]["input_height"] == 544
    assert export["export"]["opset_version"] == 17
    manifest = json.loads((repo_root / "schemas" / "manifest.json").read_text())
    assert manifest["automl_enabled"] is True
    assert set(manifest["actions"]) == {"train", "evaluate", "inference", "export", "quantize", "gen_trt_engine"}


def test_skill_info_declares_automl_and_commands(repo_root: Path) -> None:
    skill = SkillDir(repo_root)
    assert skill.automl_enabled
    assert skill.monitoring_metric == "mIoU"
    assert skill.train_command("/tmp/a b.yaml") == ["mask2former", "train", "-e", "/tmp/a b.yaml"]


ALTERED_CONFIG = '''
from dataclasses import dataclass
from mask2former.config.experiment import ExperimentConfig
from mask2former.config.fields import int_field, section
from mask2former.config.model import MaskFormerConfig, ModelConfig


@dataclass
class AlteredMaskFormer(MaskFormerConfig):
    hidden_dim: int = int_field(384, title="hidden dimension", description="changed default", minimum=64,
                                maximum=1024, math_cond="/ 8", automl_enabled=True)


@dataclass
class AlteredModel(ModelConfig):
    mask_former: AlteredMaskFormer = section(AlteredMaskFormer, title="mask2former", description="d")


@dataclass
class AlteredExperiment(ExperimentConfig):
    model: AlteredModel = section(AlteredModel, title="model", description="d")
'''


def test_check_fails_when_a_default_changes_without_regeneration(repo_root: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    skill_dir = tmp_path / "skill"
    for folder in ("schemas", "references"):
        shutil.copytree(repo_root / folder, skill_dir / folder)
    info_path = skill_dir / "references" / "skill_info.yaml"
    info_path.write_text(info_path.read_text().replace(
        "x_config_root: mask2former.config:ExperimentConfig", "x_config_root: altered_config:AlteredExperiment"))
    (tmp_path / "altered_config.py").write_text(textwrap.dedent(ALTERED_CONFIG))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("altered_config", None)

    assert main(["schemas", "check", "--skill-dir", str(skill_dir)]) == 4
    error = capsys.readouterr().err
    assert "schemas/train.schema.json" in error and "hpo schemas generate" in error
    assert "references/spec_template_train.yaml" in error

    write_generated(SkillDir(skill_dir))
    assert main(["schemas", "check", "--skill-dir", str(skill_dir)]) == 0
    schema = json.loads((skill_dir / "schemas" / "train.schema.json").read_text())
    assert schema["properties"]["model"]["properties"]["mask_former"]["properties"]["hidden_dim"]["default"] == 384
