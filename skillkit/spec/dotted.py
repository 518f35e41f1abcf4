"""Dotted paths (`train.optim.lr`) into nested spec dicts, and `a.b.c=value` override strings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from skillkit.errors import SpecError
from skillkit.spec.yaml_io import parse_yaml

_MISSING = object()


def get_dotted(spec: Mapping[str, Any], dotted: str, default: Any = _MISSING) -> Any:
    """The value at `dotted`; `default` (or a SpecError naming the path) when a part is missing."""
    current: Any = spec
    for part in dotted.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif default is not _MISSING:
            return default
        else:
            raise SpecError(f"the spec has no setting '{dotted}' (missing '{part}').")
    return current


def section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """`data[key]` when it is a mapping, else an empty one (an absent or malformed optional section)."""
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def set_dotted(spec: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `dotted` to `value`, creating intermediate mappings; refuses to descend into a non-mapping."""
    parts = dotted.split(".")
    if not all(parts):
        raise SpecError(f"'{dotted}' is not a valid dotted key: empty part.")
    current = spec
    for index, part in enumerate(parts[:-1]):
        child = current.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: index + 1])
            raise SpecError(f"cannot set '{dotted}': '{where}' holds the value {child!r}, not a section.")
        current = child
    current[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Split `a.b.c=value`; the value is read as YAML (numbers incl. `1e-4`, bools, null, lists, quoted
    strings), so `lr=1e-4`, `milestones=[10,20]`, `name="001"` mean what they look like."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError(f"override '{text}' must look like dotted.key=value (e.g. train.num_epochs=10).")
    value = parse_yaml(raw, source=f"override {text}") if raw.strip() else ""
    return key, value


def apply_overrides(spec: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply `a.b=value` strings in order (later ones win) and return the same dict."""
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(spec, key, value)
    return spec


def flatten(spec: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaf values by dotted path."""
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `update` merged in recursively (update wins; mappings merge, everything else replaces)."""
    merged: dict[str, Any] = {key: value for key, value in base.items()}
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
