"""What a sweep's parent run records as params: the resolved sweep config (dotted names), the algorithm, the
budget, and one compact line per searched parameter of the compiled space (the full space is an artifact).

Params are write-once in MLflow, so only what is fixed for the life of a sweep goes here; results that can
change when a sweep is resumed (best trial, counts) are tags and metrics (`summary.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from skillkit.spec.dotted import flatten, section


def sweep_params(config: Mapping[str, Any], space: Mapping[str, Any] | None, *, metric: str,
                 direction: str) -> dict[str, Any]:
    params: dict[str, Any] = {f"sweep.{name}": value for name, value in flatten(config).items()}
    params.update({"algorithm": algorithm_name(config), "metric": metric, "direction": direction})
    params.update({f"budget.{name}": value for name, value in _budget(config).items()})
    params.update({f"space.{name}": value for name, value in _space_ranges(space).items()})
    return params


def algorithm_name(config: Mapping[str, Any]) -> str:
    algorithm = config.get("algorithm")
    if isinstance(algorithm, Mapping):
        return str(algorithm.get("name") or "")
    return str(algorithm or "")


def _budget(config: Mapping[str, Any]) -> dict[str, Any]:
    algorithm = section(config, "algorithm")
    keys = ("max_trials", "max_epochs", "time_budget_s", "grace_period", "reduction_factor", "population_size")
    budget = {key: algorithm[key] for key in keys if algorithm.get(key) is not None}
    resources = section(config, "resources")
    budget.update({key: value for key, value in resources.items() if value is not None})
    return budget


def _space_ranges(space: Mapping[str, Any] | None) -> dict[str, str]:
    """One compact, human-readable description per searched parameter (the full space is an artifact)."""
    if not space:
        return {}
    parameters = space.get("parameters")
    ranges: dict[str, str] = {}
    if isinstance(parameters, list):
        for parameter in parameters:
            if isinstance(parameter, Mapping) and parameter.get("name"):
                described = {k: v for k, v in parameter.items() if k not in ("name", "why", "tao_type")}
                ranges[str(parameter["name"])] = json.dumps(described, sort_keys=True, default=str)
    elif isinstance(parameters, Mapping):
        for name, parameter in parameters.items():
            ranges[str(name)] = json.dumps(parameter, sort_keys=True, default=str)
    return ranges
