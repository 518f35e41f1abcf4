"""Generate TAO-format schemas, manifest and spec templates from a config dataclass tree.

The dataclass fields carry their schema metadata in `field.metadata["tao"]` (plain dicts), so this
module works for any trainer whose config root is named in skill_info.yaml (`x_config_root`).
Output is deterministic: sorted keys and lists, so regeneration is byte-identical and `check` can
name every stale file.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from skillkit.errors import SchemaError
from skillkit.skill_dir import ACTIONS, SkillDir

SCHEMA_VERSION = 1
DEPLOY_ACTIONS = ("gen_trt_engine", "evaluate", "inference")
# Leaf kinds that hold a structure (layer counts per stage, feature names...) rather than one value;
# random search over them breaks the model, so they are listed as AutoML-disabled like TAO does.
_STRUCTURED_KINDS = ("list", "collection", "dict")


def load_config_root(spec: str) -> type:
    module_name, _, attribute = spec.partition(":")
    try:
        root = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise SchemaError(f"cannot import config root '{spec}' named by x_config_root: {error}") from None
    if not (isinstance(root, type) and dataclasses.is_dataclass(root)):
        raise SchemaError(f"config root '{spec}' is not a dataclass.")
    return root


def _default_of(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _is_section(field: dataclasses.Field) -> bool:
    return dataclasses.is_dataclass(_default_of(field))


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return copy.deepcopy(value)


def _leaf_schema(field: dataclasses.Field) -> dict[str, Any]:
    meta = dict(field.metadata.get("tao") or {})
    if not meta:
        raise SchemaError(f"config field '{field.name}' has no TAO metadata; declare it with the fields helpers.")
    default = _default_of(field)
    meta["default"] = _to_plain(default)
    if default is None:
        meta["x_nullable"] = True
    meta["automl_enabled"] = bool(meta.get("automl_enabled", False))
    return meta


def _walk(cls: type, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in dataclasses.fields(cls):
        path = f"{prefix}{field.name}"
        if _is_section(field):
            yield from _walk(type(_default_of(field)), path + ".")
        else:
            yield path, _leaf_schema(field)


def _collection_schema(cls: type, prefix: str, meta: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if _is_section(field):
            properties[field.name] = _collection_schema(
                type(_default_of(field)), f"{prefix}{field.name}.", dict(field.metadata.get("tao") or {})
            )
        else:
            properties[field.name] = _leaf_schema(field)
    leaves = list(_walk(cls, prefix))
    schema = {key: value for key, value in meta.items() if key not in ("default", "x_nullable")}
    schema["type"] = "collection"
    schema["properties"] = properties
    schema["default"] = _to_plain(cls())
    schema["automl_default_parameters"] = sorted(path for path, leaf in leaves if leaf["automl_enabled"])
    schema["automl_disabled_parameters"] = sorted(
        path for path, leaf in leaves if leaf["type"] in _STRUCTURED_KINDS and not leaf["automl_enabled"]
    )
    schema["automl_enabled"] = bool(schema["automl_default_parameters"])
    popular = _popular(cls)
    if popular:
        schema["popular"] = popular
    return schema


def _popular(cls: type) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if _is_section(field):
            nested = _popular(type(_default_of(field)))
            if nested:
                result[field.name] = nested
        elif (field.metadata.get("tao") or {}).get("popular"):
            result[field.name] = _to_plain(_default_of(field))
    return result


def action_schema(root: type, action: str, *, model: str) -> dict[str, Any]:
    """The TAO-format schema of one action: every section (so full TAO specs load), the action's required."""
    schema = _collection_schema(root, "", {})
    section_names = {f.name for f in dataclasses.fields(root) if _is_section(f)}
    schema["type"] = "object"
    schema["required"] = sorted({"model", "dataset"} | ({action} & section_names))
    schema["x_tao_schema"] = {
        "action": action,
        "model": model,
        "network_arch": model,
        "schema_action": action,
        "schema_version": SCHEMA_VERSION,
        "source": f"{root.__module__}:{root.__qualname__}",
    }
    if action != "train":
        # AutoML only applies to training; other actions carry no search lists.
        schema["automl_default_parameters"] = []
    return schema


def spec_template(root: type, action: str) -> dict[str, Any]:
    """A spec holding the shared sections plus the action's own section, with defaults."""
    full = _to_plain(root())
    action_sections = set(ACTIONS) - {action}
    return {key: value for key, value in full.items() if key not in action_sections}


def deploy_template(root: type, action: str) -> dict[str, Any]:
    """Deploy-side spec: runs on a TensorRT engine (or ONNX file) instead of a checkpoint."""
    template = spec_template(root, action)
    section = template[action]
    if action == "gen_trt_engine":
        section["tensorrt"]["data_type"] = "FP16"
    else:
        section["checkpoint"] = ""
        section["trt_engine"] = "???"
    return template


def manifest(schemas: dict[str, dict[str, Any]], *, model: str) -> dict[str, Any]:
    return {
        "actions": {
            action: {
                "automl_default_parameters": schema["automl_default_parameters"],
                "automl_disabled_parameters": schema["automl_disabled_parameters"],
                "core_module": model,
                "path": f"schemas/{action}.schema.json",
                "popular": schema.get("popular", {}),
                "schema_action": action,
                "spec_template": f"references/spec_template_{action}.yaml",
            }
            for action, schema in sorted(schemas.items())
        },
        "automl_enabled": True,
        "failures": {},
        "model": model,
        "network_arch": model,
        "schema_version": SCHEMA_VERSION,
    }


def render_json(data: Any) -> str:
    return json.dumps(data, indent=1, sort_keys=True, allow_nan=True) + "\n"


def render_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=120)


def generated_files(skill: SkillDir) -> dict[Path, str]:
    """Relative path -> content of every generated file of the skill dir."""
    root = load_config_root(skill.config_root())
    model = str(skill.info.get("network_arch", "model"))
    files: dict[Path, str] = {}
    schemas = {action: action_schema(root, action, model=model) for action in ACTIONS}
    for action, schema in schemas.items():
        files[Path("schemas") / f"{action}.schema.json"] = render_json(schema)
        files[Path("references") / f"spec_template_{action}.yaml"] = render_yaml(spec_template(root, action))
    for action in DEPLOY_ACTIONS:
        files[Path("references") / f"spec_template_deploy_{action}.yaml"] = render_yaml(deploy_template(root, action))
    files[Path("schemas") / "manifest.json"] = render_json(manifest(schemas, model=model))
    return files


def write_generated(skill: SkillDir) -> list[Path]:
    written = []
    for relative, content in generated_files(skill).items():
        target = skill.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_text() != content:
            target.write_text(content)
            written.append(relative)
    return written


def stale_files(skill: SkillDir) -> list[Path]:
    """Generated files that are missing or differ from what generation would write now."""
    stale = []
    for relative, content in generated_files(skill).items():
        target = skill.path / relative
        if not target.is_file() or target.read_text() != content:
            stale.append(relative)
    return stale
