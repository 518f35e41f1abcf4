"""The learning-curve table format: epoch-by-epoch validation curves of many configurations, replayed by
the simulator. Any table in this format can be passed with `--table FILE`, so outside tables drop in.

A table is one gzip-compressed JSON object (`*.json.gz`; `zcat FILE | python -m json.tool` shows it):

    {
      "format": "hpo-curve-table/1",
      "name": "sklearn_mlp",                 # suite name (letters, digits, '_', '-')
      "description": "...",                  # what was trained on what, by which script
      "metric": "val_accuracy",              # what the curves hold
      "direction": "maximize",               # or "minimize"
      "max_epochs": 27,                      # R: every curve has this many values (epochs 1..R)
      "parameters": [                        # the search space, one entry per hyperparameter
        {"name": "lr", "type": "float", "minimum": 1e-4, "maximum": 1.0, "scale": "log"},
        {"name": "hidden", "type": "int", "minimum": 8, "maximum": 256, "scale": "log"},
        {"name": "activation", "type": "categorical", "enum": ["relu", "tanh"]}
      ],
      "configs": [{"lr": 0.01, "hidden": 64, "activation": "relu"}, ...],    # N configurations
      "curves": [[[v_1, ..., v_R], ...seeds], ...configs],                  # N x S x R metric values
      "epoch_seconds": [[t_1, ..., t_R], ...configs] | null,                # optional measured cost
      "source": {"script": "...", "command": "...", "seed": 0, ...}        # provenance, free-form
    }

`scale` is optional (`linear` by default); it becomes the schema hint `x_scale`, which our search-space
compiler honours and TAO's samplers ignore, exactly as for the real Mask2Former schema. A configuration
proposed by an algorithm is looked up as its nearest neighbour in the table (each parameter normalised to
[0, 1] on its own scale; a categorical counts as 0 when equal, 1 otherwise), as Syne Tune's blackbox
repository does for tabulated benchmarks. Curves may hold NaN only where a run diverged; such a value is
replaced by the worst finite value of the table so a diverged configuration loses rather than crashes.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "hpo-curve-table/1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
TYPES = ("float", "int", "categorical")


class TableError(ValueError):
    """A curve table that does not follow the documented format; the message names the field."""


@dataclass(frozen=True)
class TableParameter:
    name: str
    type: str
    minimum: float | None = None
    maximum: float | None = None
    scale: str = "linear"
    enum: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        if self.type == "categorical":
            return {"name": self.name, "type": self.type, "enum": list(self.enum)}
        return {"name": self.name, "type": self.type, "minimum": self.minimum, "maximum": self.maximum,
                "scale": self.scale}

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """Values mapped to [0, 1] on the parameter's own scale (numeric parameters only)."""
        low, high = float(self.minimum), float(self.maximum)  # type: ignore[arg-type]
        if self.scale == "log":
            values, low, high = np.log(values), math.log(low), math.log(high)
        return (values - low) / (high - low) if high > low else np.zeros_like(values)


@dataclass(frozen=True)
class CurveTable:
    name: str
    description: str
    metric: str
    direction: str
    max_epochs: int
    parameters: tuple[TableParameter, ...]
    configs: tuple[Mapping[str, Any], ...]
    curves: np.ndarray  # (configs, seeds, epochs)
    epoch_seconds: np.ndarray | None = None  # (configs, epochs)
    source: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_configs(self) -> int:
        return int(self.curves.shape[0])

    @property
    def n_seeds(self) -> int:
        return int(self.curves.shape[1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "name": self.name, "description": self.description, "metric": self.metric,
            "direction": self.direction, "max_epochs": self.max_epochs,
            "parameters": [p.to_dict() for p in self.parameters],
            "configs": [dict(c) for c in self.configs],
            "curves": [[[_round(v) for v in seed] for seed in config] for config in self.curves.tolist()],
            "epoch_seconds": None if self.epoch_seconds is None else [[_round(v) for v in row] for row in self.epoch_seconds.tolist()],
            "source": dict(self.source),
        }

    def save(self, path: str | Path) -> Path:
        """Write atomically (a partial table of a generator that is still running stays readable)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as handle:
            json.dump(self.to_dict(), handle, separators=(",", ":"), allow_nan=True)
        tmp.replace(path)
        return path


def _round(value: float) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


def load_table(path: str | Path) -> CurveTable:
    path = Path(path)
    if not path.is_file():
        raise TableError(f"curve table '{path}' does not exist.")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise TableError(f"curve table '{path}' is not gzip-compressed JSON: {error}") from None
    return table_from_dict(data, source=str(path))


def table_from_dict(data: Any, *, source: str = "<table>") -> CurveTable:
    def fail(message: str) -> TableError:
        return TableError(f"curve table '{source}': {message}")

    if not isinstance(data, Mapping):
        raise fail("the top level must be a JSON object.")
    if data.get("format") != FORMAT:
        raise fail(f"'format' must be '{FORMAT}', got {data.get('format')!r}.")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail(f"'name' must be letters, digits, '_' or '-' (at most 64), got {name!r}.")
    if data.get("direction") not in ("maximize", "minimize"):
        raise fail(f"'direction' must be 'maximize' or 'minimize', got {data.get('direction')!r}.")
    max_epochs = data.get("max_epochs")
    if not isinstance(max_epochs, int) or max_epochs < 2:
        raise fail(f"'max_epochs' must be an integer >= 2, got {max_epochs!r}.")
    parameters = tuple(_parameter(p, i, fail) for i, p in enumerate(data.get("parameters") or []))
    if not parameters:
        raise fail("'parameters' must list at least one hyperparameter.")
    configs = data.get("configs")
    if not isinstance(configs, list) or not configs:
        raise fail("'configs' must be a non-empty list of objects.")
    names = [p.name for p in parameters]
    for index, config in enumerate(configs):
        if not isinstance(config, Mapping) or sorted(config) != sorted(names):
            raise fail(f"configs[{index}] must have exactly the keys {names}, got {config!r}.")
    try:
        curves = np.array([[[np.nan if v is None else v for v in seed] for seed in c] for c in data.get("curves") or []],
                          dtype=float)
    except (TypeError, ValueError):
        raise fail("'curves' must be a list (configs) of lists (seeds) of lists (epochs) of numbers.") from None
    if curves.ndim != 3 or curves.shape[0] != len(configs) or curves.shape[2] != max_epochs or curves.shape[1] < 1:
        raise fail(f"'curves' must have shape (configs={len(configs)}, seeds>=1, epochs={max_epochs}), got {curves.shape}.")
    finite = curves[np.isfinite(curves)]
    if finite.size == 0:
        raise fail("'curves' holds no finite value.")
    worst = finite.min() if data["direction"] == "maximize" else finite.max()
    curves = np.where(np.isfinite(curves), curves, worst)
    seconds = data.get("epoch_seconds")
    epoch_seconds = None
    if seconds is not None:
        epoch_seconds = np.array(seconds, dtype=float)
        if epoch_seconds.shape != (len(configs), max_epochs) or not np.all(epoch_seconds > 0):
            raise fail(f"'epoch_seconds' must be null or positive numbers of shape ({len(configs)}, {max_epochs}).")
    return CurveTable(
        name=name, description=str(data.get("description", "")), metric=str(data.get("metric", "metric")),
        direction=data["direction"], max_epochs=max_epochs, parameters=parameters,
        configs=tuple(dict(c) for c in configs), curves=curves, epoch_seconds=epoch_seconds,
        source=dict(data.get("source") or {}),
    )


def _parameter(item: Any, index: int, fail: Any) -> TableParameter:
    where = f"parameters[{index}]"
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise fail(f"{where} must be an object with a 'name'.")
    kind = item.get("type")
    if kind not in TYPES:
        raise fail(f"{where}.type must be one of {', '.join(TYPES)}, got {kind!r}.")
    if kind == "categorical":
        enum = item.get("enum")
        if not isinstance(enum, list) or len(enum) < 2:
            raise fail(f"{where}.enum must list at least two options.")
        return TableParameter(name=item["name"], type=kind, enum=tuple(enum))
    low, high = item.get("minimum"), item.get("maximum")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
        raise fail(f"{where} needs numeric minimum < maximum, got {low!r}, {high!r}.")
    scale = item.get("scale", "linear")
    if scale not in ("linear", "log") or (scale == "log" and low <= 0):
        raise fail(f"{where}.scale must be 'linear' or 'log' (log needs minimum > 0), got {scale!r}.")
    return TableParameter(name=item["name"], type=kind, minimum=low, maximum=high, scale=scale)


class NearestConfig:
    """Nearest tabulated configuration of a proposed one (see module docstring for the distance)."""

    def __init__(self, parameters: Sequence[TableParameter], configs: Sequence[Mapping[str, Any]]) -> None:
        self.parameters = tuple(parameters)
        self.numeric = [p for p in self.parameters if p.type != "categorical"]
        self.categorical = [p for p in self.parameters if p.type == "categorical"]
        self.points = np.stack(
            [p.normalise(np.array([float(c[p.name]) for c in configs])) for p in self.numeric], axis=1,
        ) if self.numeric else np.zeros((len(configs), 0))
        self.labels = [np.array([str(c[p.name]) for c in configs]) for p in self.categorical]

    def index(self, config: Mapping[str, Any]) -> int:
        point = np.array([float(p.normalise(np.array([float(config[p.name])]))[0]) for p in self.numeric])
        distance = np.sum((self.points - point) ** 2, axis=1) if self.numeric else np.zeros(len(self.points))
        for param, labels in zip(self.categorical, self.labels):
            distance = distance + (labels != str(config[param.name])).astype(float)
        return int(np.argmin(distance))
