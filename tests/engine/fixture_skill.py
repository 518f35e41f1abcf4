"""A tiny skill dir whose train/evaluate commands run `fixture_trainer.py` (same contract as the real trainer).

Used by the engine tests and by `benchmarks/engine_overhead.py`: `make_fixture_skill(folder)` writes
`references/skill_info.yaml`, `schemas/{train,evaluate}.schema.json` (TAO format, four AutoML parameters:
`train.optim.lr`, `train.optim.weight_decay` (both hot for PBT), `model.width`, `model.activation`) and the
spec templates. `make_real_space_skill(folder)` is the project's own skill (its real schemas, templates,
data sources and default search space) with the train/evaluate commands swapped for the fixture trainer:
the search itself under test on the real parameter set, at fixture speed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

FIXTURE_TRAINER = Path(__file__).with_name("fixture_trainer.py")

TRAIN_TEMPLATE: dict[str, Any] = {
    "results_dir": "",
    "model": {"width": 32, "activation": "relu"},
    "train": {
        "num_epochs": 4,
        "resume_training_checkpoint_path": "",
        "pretrained_model_path": "",
        "optim": {"lr": 0.001, "weight_decay": 0.01},
    },
    "fixture": {"sleep_s": 0.02, "steps_per_epoch": 4, "fail": "none", "fail_at_epoch": 1, "fail_if_lr_above": None,
                "plateau_after": None},
}
# Like the real skill's, the evaluate spec is the whole experiment config plus its own section, so a train
# spec's settings carry over (baseline, promotion).
EVALUATE_TEMPLATE: dict[str, Any] = {**TRAIN_TEMPLATE, "evaluate": {"checkpoint": "", "results_dir": ""}}


def _leaf(type_name: str, default: Any, **extra: Any) -> dict[str, Any]:
    return {"type": type_name, "default": default, **extra}


def _schema(action: str) -> dict[str, Any]:
    model = {
        "type": "collection",
        "properties": {
            "width": _leaf("int", 32, minimum=8, maximum=64, automl_enabled=True),
            "activation": _leaf("categorical", "relu", enum=["relu", "gelu", "silu"], automl_enabled=True),
        },
    }
    properties: dict[str, Any] = {"results_dir": _leaf("string", ""), "model": model}
    properties["train"] = {
        "type": "collection",
        "properties": {
            "num_epochs": _leaf("int", 4, minimum=1, maximum=1000),
            "resume_training_checkpoint_path": _leaf("string", ""),
            "pretrained_model_path": _leaf("string", ""),
            "optim": {
                "type": "collection",
                "properties": {
                    "lr": _leaf("float", 0.001, minimum=1e-5, maximum=0.1, automl_enabled=True, x_pbt="hot"),
                    "weight_decay": _leaf("float", 0.01, minimum=0.0, maximum=0.5, automl_enabled=True,
                                          x_pbt="hot"),
                },
            },
        },
    }
    properties["fixture"] = {
        "type": "collection",
        "properties": {
            "sleep_s": _leaf("float", 0.02, minimum=0.0, maximum=60.0),
            "steps_per_epoch": _leaf("int", 4, minimum=1, maximum=1000),
            "fail": _leaf("categorical", "none", enum=["none", "crash", "oom", "data", "bad_spec", "hang", "kill"]),
            "fail_at_epoch": _leaf("int", 1, minimum=1, maximum=1000),
            "fail_if_lr_above": {"type": "float", "default": None, "x_nullable": True},
            "plateau_after": {"type": "int", "default": None, "x_nullable": True, "minimum": 0},
        },
    }
    if action == "train":
        automl = ["model.activation", "model.width", "train.optim.lr", "train.optim.weight_decay"]
        default = TRAIN_TEMPLATE
    else:
        properties["evaluate"] = {"type": "collection",
                                  "properties": {"checkpoint": _leaf("string", ""), "results_dir": _leaf("string", "")}}
        automl = []
        default = EVALUATE_TEMPLATE
    return {
        "type": "object",
        "properties": properties,
        "default": default,
        "required": [],
        "popular": {},
        "automl_default_parameters": automl,
        "automl_disabled_parameters": [],
        "x_tao_schema": {"action": action, "model": "fixture", "network_arch": "fixture", "schema_version": "1", "source": "tests"},
    }


def make_fixture_skill(folder: Path, *, python: str | None = None, automl_enabled: bool = True,
                       with_schema: bool = True) -> Path:
    """Write the fixture skill dir into `folder` and return it."""
    python = python or sys.executable
    (folder / "references").mkdir(parents=True, exist_ok=True)
    (folder / "schemas").mkdir(parents=True, exist_ok=True)
    info = {
        "name": "fixture-skill",
        "network_arch": "fixture",
        "automl_enabled": automl_enabled,
        "monitoring_metric": "mIoU",
        "actions": {
            "train": {"command": f"{python} {FIXTURE_TRAINER} train -e {{config_path}}", "config_format": "yaml",
                      "mode": "config"},
            "evaluate": {"command": f"{python} {FIXTURE_TRAINER} evaluate -e {{config_path}}",
                         "config_format": "yaml", "mode": "config"},
        },
        "data_sources": {},
        "spec_params": {
            "train": {"results_dir": "output_dir", "train.pretrained_model_path": "ptm_if_no_resume_model",
                      "train.resume_training_checkpoint_path": "resume_model"},
            "evaluate": {"evaluate.checkpoint": "parent_model", "results_dir": "output_dir"},
        },
        "spec_shorthand_keys": {"num_epochs": "train.num_epochs", "learning_rate": "train.optim.lr"},
    }
    (folder / "references" / "skill_info.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    (folder / "references" / "spec_template_train.yaml").write_text(yaml.safe_dump(TRAIN_TEMPLATE, sort_keys=False))
    (folder / "references" / "spec_template_evaluate.yaml").write_text(yaml.safe_dump(EVALUATE_TEMPLATE, sort_keys=False))
    if with_schema:
        for action in ("train", "evaluate"):
            (folder / "schemas" / f"{action}.schema.json").write_text(json.dumps(_schema(action), indent=1))
    return folder


REPO = Path(__file__).resolve().parents[2]


def make_real_space_skill(folder: Path, *, python: str | None = None) -> Path:
    """The repository's skill dir with `fixture_trainer.py` as its train and evaluate commands."""
    import shutil

    python = python or sys.executable
    shutil.copytree(REPO / "schemas", folder / "schemas", dirs_exist_ok=True)
    (folder / "references").mkdir(parents=True, exist_ok=True)
    for template in (REPO / "references").glob("spec_template_*.yaml"):
        shutil.copy2(template, folder / "references" / template.name)
    info = yaml.safe_load((REPO / "references" / "skill_info.yaml").read_text())
    for action in ("train", "evaluate"):
        info["actions"][action]["command"] = f"{python} {FIXTURE_TRAINER} {action} -e {{config_path}}"
    info["actions"] = {name: entry for name, entry in info["actions"].items() if name in ("train", "evaluate")}
    (folder / "references" / "skill_info.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    return folder
