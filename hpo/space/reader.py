"""Read any TAO-format action schema into a flat table of leaves.

TAO's schemas (DESIGN.md §4) are nested `collection`s whose leaves carry TAO type names, bounds
(`Infinity` allowed), enums, option weights, `math_cond`, `depends_on` and AutoML flags. Real files
have quirks this reader absorbs so that the compiler sees one clean shape:

- JSON Schema spellings (`number`, `integer`, `boolean`, `array`, `object`) next to TAO's names;
- `anyOf` unions: the leaf is read as its first non-null branch (the outer node's keys win),
  and a `null` branch only marks the leaf nullable;
- missing `type`: inferred from `properties`/`enum`/the default's Python type;
- defaults given on the leaf or only in the enclosing collection's `default` mapping;
- `automl_default_parameters`/`automl_disabled_parameters` at any level, in random order, as full
  dotted paths or relative to their collection, plus TAO's stray `automl_disabled_parameters`
  pseudo-property inside `properties`.

The reader does not judge values (bounds, weights, conditions); the compiler does that only for the
parameters actually selected, so junk in an unused corner of a third-party schema cannot break a sweep.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skillkit.errors import SearchSpaceError
from skillkit.spec.dotted import section

TAO_TYPES = frozenset({
    "int", "integer", "float", "bool", "string", "categorical", "ordered", "ordered_int", "list",
    "list_1_backbone", "list_1_normal", "list_2", "list_3", "subset_list", "optional_list",
    "collection", "dict",
})

# JSON Schema names some generators use instead of TAO's.
_JSON_SCHEMA_TYPES = {
    "number": "float",
    "integer": "integer",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
    "str": "string",
}

_TRUE_STRINGS = frozenset({"true", "yes", "1", "on"})
_FALSE_STRINGS = frozenset({"false", "no", "0", "off"})


def lenient_bool(value: Any) -> bool | None:
    """`as_bool` that reads unparseable flags as "not given" (used while scanning unused leaves)."""
    try:
        return as_bool(value, name="", key="")
    except SearchSpaceError:
        return None


def as_bool(value: Any, *, name: str, key: str) -> bool | None:
    """TAO flags arrive as booleans or as strings such as "TRUE"/"FALSE"; None stays None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("", "none", "null"):
            return None
        if lowered in _TRUE_STRINGS:
            return True
        if lowered in _FALSE_STRINGS or lowered == "nan":
            return False
    raise SearchSpaceError(f"'{name}': {key} must be a boolean (or 'TRUE'/'FALSE'), got {value!r}.")


@dataclass(frozen=True)
class SchemaLeaf:
    """One leaf of the schema, with TAO's quirks normalised; `node` is the merged raw leaf dict."""

    path: str
    type: str
    node: Mapping[str, Any]
    default: Any
    nullable: bool
    union_types: tuple[str, ...]

    def get(self, key: str, fallback: Any = None) -> Any:
        return self.node.get(key, fallback)


@dataclass(frozen=True)
class SchemaInfo:
    """Everything the compiler needs from one action schema."""

    leaves: Mapping[str, SchemaLeaf]
    collections: frozenset[str]
    default_parameters: tuple[str, ...]
    disabled_parameters: frozenset[str]
    source: Mapping[str, Any]

    def exists(self, path: str) -> bool:
        return path in self.leaves or path in self.collections


def normalise_type(raw: Any, node: Mapping[str, Any]) -> str:
    """Map a leaf's `type` to a TAO type name, inferring it when absent."""
    if isinstance(raw, list):
        non_null = [item for item in raw if item != "null"]
        raw = non_null[0] if non_null else "null"
    if isinstance(raw, str):
        lowered = raw.strip().lower()
        if lowered in TAO_TYPES:
            return lowered
        if lowered in _JSON_SCHEMA_TYPES:
            mapped = _JSON_SCHEMA_TYPES[lowered]
            if mapped == "dict" and isinstance(node.get("properties"), dict):
                return "collection"
            return mapped
        return lowered
    if isinstance(node.get("properties"), dict):
        return "collection"
    if "enum" in node or "valid_options" in node:
        return "categorical"
    default = node.get("default")
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "string"
    if isinstance(default, list):
        return "list"
    if isinstance(default, dict):
        return "dict"
    return "unknown"


def _merge_union(node: Mapping[str, Any]) -> tuple[dict[str, Any], bool, tuple[str, ...]]:
    """Resolve `anyOf`/`oneOf`: first non-null branch, outer keys win; report nullability."""
    merged = dict(node)
    nullable = False
    union_types: tuple[str, ...] = ()
    raw_type = node.get("type")
    if isinstance(raw_type, list) and "null" in raw_type:
        nullable = True
    for key in ("anyOf", "oneOf"):
        branches = node.get(key)
        if not isinstance(branches, list):
            continue
        merged.pop(key, None)
        usable = []
        for branch in branches:
            if not isinstance(branch, dict):
                continue
            if branch.get("type") == "null":
                nullable = True
                continue
            usable.append(branch)
        union_types = tuple(str(normalise_type(branch.get("type"), branch)) for branch in usable)
        if usable:
            chosen = usable[0]
            for branch_key, value in chosen.items():
                merged.setdefault(branch_key, value)
    return merged, nullable, union_types


def _collect_lists(
    node: Mapping[str, Any], prefix: str, defaults: list[tuple[str, str]], disabled: list[tuple[str, str]]
) -> None:
    for key, target in (("automl_default_parameters", defaults), ("automl_disabled_parameters", disabled)):
        entries = node.get(key)
        if isinstance(entries, str):
            entries = [part.strip() for part in entries.split(",") if part.strip()]
        if isinstance(entries, list):
            target.extend((prefix, str(entry)) for entry in entries if isinstance(entry, (str, int)))


def read_schema(schema: Mapping[str, Any]) -> SchemaInfo:
    """Flatten a TAO-format schema dict into leaves keyed by dotted path."""
    if not isinstance(schema, Mapping):
        raise SearchSpaceError(f"a TAO schema must be a JSON object, got {type(schema).__name__}.")
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        raise SearchSpaceError("a TAO schema needs a 'properties' object; this one has none.")
    leaves: dict[str, SchemaLeaf] = {}
    collections: set[str] = set()
    default_refs: list[tuple[str, str]] = []
    disabled_refs: list[tuple[str, str]] = []
    _collect_lists(schema, "", default_refs, disabled_refs)

    def walk(props: Mapping[str, Any], prefix: str, parent_default: Any) -> None:
        for key, raw in props.items():
            if key in ("automl_default_parameters", "automl_disabled_parameters") and not isinstance(raw, dict):
                # TAO's stray pseudo-property: a list of paths, not a field.
                _collect_lists({key: raw}, prefix.rstrip("."), default_refs, disabled_refs)
                continue
            if not isinstance(raw, Mapping):
                continue
            path = f"{prefix}{key}"
            node, nullable, union_types = _merge_union(raw)
            tao_type = normalise_type(node.get("type"), node)
            if "default" in node:
                default = node["default"]
            elif isinstance(parent_default, Mapping):
                default = parent_default.get(key)
            else:
                default = None
            if tao_type == "collection" and isinstance(node.get("properties"), Mapping):
                collections.add(path)
                _collect_lists(node, path, default_refs, disabled_refs)
                walk(node["properties"], f"{path}.", default)
                continue
            leaves[path] = SchemaLeaf(
                path=path, type=tao_type, node=node, default=default, nullable=nullable, union_types=union_types,
            )

    walk(properties, "", schema.get("default"))
    known = set(leaves) | collections

    def resolve(prefix: str, entry: str) -> str:
        if entry in known or not prefix:
            return entry
        relative = f"{prefix}.{entry}"
        return relative if relative in known else entry

    default_parameters: list[str] = []
    for prefix, entry in default_refs:
        path = resolve(prefix, entry)
        if path not in default_parameters:
            default_parameters.append(path)
    disabled = {resolve(prefix, entry) for prefix, entry in disabled_refs}
    for path, leaf in leaves.items():
        if lenient_bool(leaf.node.get("automl_enabled")) is False and "automl_enabled" in leaf.node:
            disabled.add(path)
    if not default_parameters:
        # Schemas without any automl_default_parameters list mark defaults with automl_enabled: true.
        for path, leaf in leaves.items():
            if lenient_bool(leaf.node.get("automl_enabled")):
                default_parameters.append(path)
    source = section(schema, "x_tao_schema")
    return SchemaInfo(
        leaves=leaves,
        collections=frozenset(collections),
        default_parameters=tuple(sorted(default_parameters)),
        disabled_parameters=frozenset(disabled),
        source=dict(source),
    )


def load_schema_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a schema file (TAO's `Infinity` tokens included); missing/broken files are `SchemaError`s."""
    from skillkit.skill_dir import read_json_file

    data = read_json_file(Path(path))
    if not isinstance(data, dict):
        from skillkit.errors import SchemaError

        raise SchemaError(f"schema file '{path}' must hold a JSON object.")
    return data
