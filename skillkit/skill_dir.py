"""A TAO "skill dir": the files through which the engine learns everything about a trainer.

The engine never imports the trainer; it reads `references/skill_info.yaml` (commands, data
sources, spec parameters), `schemas/<action>.schema.json` and `references/spec_template_<action>.yaml`.
"""

from __future__ import annotations

import json
import os
import shlex
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from skillkit.errors import SchemaError

ACTIONS = ("train", "evaluate", "inference", "export", "quantize", "gen_trt_engine")
DEFAULT_MONITORING_METRIC = "mIoU"


def default_skill_dir() -> Path:
    """The skill dir used when none is given: $HPO_SKILL_DIR, else the nearest ancestor of the working
    directory holding `references/skill_info.yaml`, else the checkout this package was installed from."""
    env = os.environ.get("HPO_SKILL_DIR")
    if env:
        return Path(env)
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "references" / "skill_info.yaml").is_file():
            return folder
    return Path(__file__).resolve().parents[1]


def read_json_file(path: Path) -> Any:
    """Read JSON that may hold TAO's non-standard `Infinity`/`-Infinity` tokens (Python's json accepts them)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SchemaError(f"schema file '{path}' does not exist.") from None
    except json.JSONDecodeError as error:
        raise SchemaError(f"schema file '{path}' is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}.") from None


class SkillDir:
    """Read-only view of a skill directory."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_skill_dir()
        if not self.path.is_dir():
            raise SchemaError(f"skill dir '{self.path}' does not exist or is not a folder.")

    def __repr__(self) -> str:
        return f"SkillDir({str(self.path)!r})"

    @cached_property
    def info(self) -> dict[str, Any]:
        info_path = self.path / "references" / "skill_info.yaml"
        if not info_path.is_file():
            raise SchemaError(f"skill dir '{self.path}' has no references/skill_info.yaml.")
        try:
            data = yaml.safe_load(info_path.read_text())
        except yaml.YAMLError as error:
            raise SchemaError(f"'{info_path}' is not valid YAML: {error}") from None
        if not isinstance(data, dict) or not isinstance(data.get("actions"), dict):
            raise SchemaError(f"'{info_path}' must be a mapping with an 'actions' mapping.")
        return data

    @property
    def automl_enabled(self) -> bool:
        return str(self.info.get("automl_enabled", False)).lower() == "true"

    @property
    def network_arch(self) -> str:
        """The model's name (`network_arch`); files a job creates are named after it (`<arch>.onnx`)."""
        return str(self.info.get("network_arch") or self.info.get("name") or "model")

    @property
    def monitoring_metric(self) -> str:
        return str(self.info.get("monitoring_metric", DEFAULT_MONITORING_METRIC))

    def schema_path(self, action: str) -> Path:
        return self.path / "schemas" / f"{action}.schema.json"

    def template_path(self, action: str) -> Path:
        return self.path / "references" / f"spec_template_{action}.yaml"

    def has_schema(self, action: str) -> bool:
        return self.schema_path(action).is_file()

    def has_template(self, action: str) -> bool:
        return self.template_path(action).is_file()

    def schema(self, action: str) -> dict[str, Any]:
        path = self.schema_path(action)
        if not path.is_file():
            raise SchemaError(
                f"skill dir '{self.path}' has no schema for action '{action}' (expected {path}); "
                "run 'hpo schemas generate' to create it."
            )
        data = read_json_file(path)
        if not isinstance(data, dict) or "properties" not in data:
            raise SchemaError(f"schema file '{path}' must be an object with 'properties'.")
        return data

    def template(self, action: str) -> dict[str, Any]:
        path = self.template_path(action)
        if not path.is_file():
            raise SchemaError(
                f"skill dir '{self.path}' has no spec template for action '{action}' (expected {path}); "
                "run 'hpo schemas generate' to create it."
            )
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise SchemaError(f"spec template '{path}' is not valid YAML: {error}") from None
        if not isinstance(data, dict):
            raise SchemaError(f"spec template '{path}' must be a mapping.")
        return data

    def action_info(self, action: str) -> dict[str, Any]:
        actions = self.info["actions"]
        if action not in actions:
            raise SchemaError(
                f"skill '{self.info.get('name', self.path)}' has no action '{action}'; "
                f"it offers: {', '.join(sorted(actions))}."
            )
        return actions[action]

    def command(self, action: str, config_path: str | os.PathLike[str]) -> list[str]:
        """The argv that runs `action` on a spec file, from the action's `command` template."""
        template = self.action_info(action).get("command")
        if not template or "{config_path}" not in template:
            raise SchemaError(f"action '{action}' in skill_info.yaml needs a 'command' containing '{{config_path}}'.")
        return shlex.split(template.replace("{config_path}", shlex.quote(str(config_path))))

    def mlflow_model_command(self, config_path: str | os.PathLike[str], output_dir: str | os.PathLike[str]) -> list[str] | None:
        """The argv that packages a checkpoint as an MLflow model folder (`x_mlflow_model.command`, ours), or
        None when the skill does not offer it; the spec at `config_path` is for `x_mlflow_model.config_action`."""
        entry = self.info.get("x_mlflow_model")
        if not isinstance(entry, dict) or not entry.get("command"):
            return None
        template = str(entry["command"])
        if "{config_path}" not in template or "{output_dir}" not in template:
            raise SchemaError("x_mlflow_model.command in skill_info.yaml needs '{config_path}' and '{output_dir}'.")
        return [part.replace("{config_path}", str(config_path)).replace("{output_dir}", str(output_dir))
                for part in shlex.split(template)]

    def train_command(self, config_path: str | os.PathLike[str]) -> list[str]:
        return self.command("train", config_path)

    def data_sources(self, action: str) -> dict[str, dict[str, Any]]:
        return dict(self.info.get("data_sources", {}).get(action, {}))

    def spec_params(self, action: str) -> dict[str, str]:
        return dict(self.info.get("spec_params", {}).get(action, {}))

    @property
    def gpu_spec_keys(self) -> tuple[str | None, str | None]:
        """(key holding the GPU count, key holding the GPU index list) of the train spec.

        `gpu_spec_key` is TAO's own skill_info key (e.g. `train.num_gpus`); `x_gpu_ids_spec_key` is ours, for
        trainers that also take an explicit index list (e.g. `train.gpu_ids`). The engine fills both for a
        trial given several GPUs, so the trainer runs data-parallel over all of them."""
        count = self.info.get("gpu_spec_key")
        ids = self.info.get("x_gpu_ids_spec_key")
        return (str(count) if count else None), (str(ids) if ids else None)

    @property
    def handoff_keys(self) -> tuple[str, ...]:
        """Spec keys the trained model's structure depends on (our `x_handoff_keys`): export and deploy specs
        must carry them over from the training spec. Empty when the skill names none."""
        keys = self.info.get("x_handoff_keys") or []
        if not isinstance(keys, list) or not all(isinstance(key, str) and key for key in keys):
            raise SchemaError(f"skill_info.yaml 'x_handoff_keys' must be a list of dotted spec keys, got {keys!r}.")
        return tuple(keys)

    def config_root(self) -> str:
        """`module:Class` of the dataclass the schemas are generated from (our `x_config_root` key)."""
        root = self.info.get("x_config_root")
        if not root or ":" not in str(root):
            raise SchemaError("skill_info.yaml needs 'x_config_root: module:Class' naming the config dataclass to generate schemas from.")
        return str(root)
