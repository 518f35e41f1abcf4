"""Builders for hand-crafted TAO-format schemas in the search-space tests.

`tao_schema({"train.optim.lr": {...}, ...})` nests dotted leaves into TAO `collection`s the way TAO's
generator does (per-collection `default` mappings, `automl_*` lists at the top and in collections,
and the stray `automl_disabled_parameters` pseudo-property inside `properties`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any


def tao_schema(
    leaves: Mapping[str, Mapping[str, Any]],
    *,
    defaults: Iterable[str] = (),
    disabled: Iterable[str] = (),
    stray_disabled: Iterable[str] = (),
) -> dict[str, Any]:
    root: dict[str, Any] = {"type": "object", "properties": {}, "default": {}}
    for path, leaf in leaves.items():
        parts = path.split(".")
        node = root
        for part in parts[:-1]:
            props = node["properties"]
            if part not in props:
                props[part] = {"type": "collection", "properties": {}, "default": {}, "automl_enabled": False}
            node = props[part]
        node["properties"][parts[-1]] = copy.deepcopy(dict(leaf))
    _fill_defaults(root)
    root["automl_default_parameters"] = list(defaults)
    root["automl_disabled_parameters"] = list(disabled)
    if stray_disabled:
        root["properties"]["automl_disabled_parameters"] = list(stray_disabled)
    root["x_tao_schema"] = {"action": "train", "model": "testnet", "schema_version": 1}
    return root


def _fill_defaults(node: dict[str, Any]) -> Any:
    if node.get("type") in ("collection", "object") and isinstance(node.get("properties"), dict):
        defaults = {}
        for key, child in node["properties"].items():
            if isinstance(child, dict):
                value = _fill_defaults(child)
                defaults[key] = value
        node["default"] = defaults
        return defaults
    return node.get("default")


def nested(values: Mapping[str, Any]) -> dict[str, Any]:
    """{'a.b': 1} -> {'a': {'b': 1}}."""
    out: dict[str, Any] = {}
    for path, value in values.items():
        node = out
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def spec_from(schema: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The schema's nested defaults with `values` (dotted) applied."""
    spec = copy.deepcopy(schema["default"])
    for path, value in values.items():
        node = spec
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return spec
