"""Dict <-> dataclass conversion for the experiment config.

Specs are validated against the generated schema before they get here, so conversion only needs to
be strict about structure (unknown keys are still refused, naming the dotted path, in case a caller
skips validation).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from mask2former.config.experiment import ExperimentConfig
from skillkit.errors import SpecError


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise SpecError(f"'{prefix or '<root>'}' must be a mapping of settings, got {type(data).__name__} {data!r}.")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        paths = ", ".join(f"'{prefix}{key}'" for key in unknown)
        raise SpecError(f"unknown setting(s) {paths}; allowed keys here: {', '.join(sorted(known))}.")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        field = known[name]
        default = field.default_factory() if callable(field.default_factory) else None
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value or {}, f"{prefix}{name}.")
        else:
            kwargs[name] = copy.deepcopy(value)
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any]) -> ExperimentConfig:
    """Build an `ExperimentConfig` from a (validated) spec dict; missing keys keep their defaults."""
    return _build(ExperimentConfig, data, "")


def config_to_dict(config: Any) -> dict[str, Any]:
    """The spec dict of a config (nested plain data, in field order)."""
    return dataclasses.asdict(config)


def default_spec() -> dict[str, Any]:
    """Every section with its default values."""
    return config_to_dict(ExperimentConfig())
