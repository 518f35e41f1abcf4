"""Benchmark suites: what a configuration's learning curve is, what it costs, and how far from the optimum it
ends. All offline.

- `mfh3_<preset>` / `mfh6_<preset>`: mf-prior-bench's multi-fidelity Hartmann functions (3-D and 6-D) with
  its four presets of fidelity bias and noise (`good`, `moderate`, `bad`, `terrible`), evaluated by
  mf-prior-bench's own generator classes. Fidelity z = 1..R is the epoch (the generator is built with R
  fidelities); each epoch costs one unit; the value is minimised; at z = R the function is the noise-free
  Hartmann function, so the regret is f(x) - f* with the known global minimum f*.
- Curve tables (`table.py`): `sklearn_mlp`, `mask2former_tiny` and any `--table FILE`. A configuration is
  looked up as its nearest tabulated neighbour; each trial replays one seed's curve (drawn per trial); the
  regret uses the mean over seeds of the R-epoch value (the configuration's true quality), against the best
  such mean in the table; an epoch costs the table's measured seconds when it has them.

Every suite describes its search space as a TAO-format train schema (`schema()`), the same file format as
the real skill's `schemas/train.schema.json`: our engine compiles it with `hpo.space.compile_space`, and
TAO AutoML reads it as its `search_schema`, exactly as both do for the real skill.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.search_efficiency.table import CurveTable, NearestConfig, TableParameter, load_table

DATA_DIR = Path(__file__).resolve().parent / "data"
HARTMANN_PRESETS = ("good", "moderate", "bad", "terrible")
HARTMANN_OPTIMUM = {3: -3.86278, 6: -3.32237}


class TrialCurve:
    """One trial's learning curve: value after each epoch, cost of each epoch, true final regret."""

    def __init__(self, config: Mapping[str, Any], value: Callable[[int], float], regret: float,
                 cost: Callable[[int], float]) -> None:
        self.config = dict(config)
        self._value = value
        self.regret = float(regret)
        self.cost = cost

    def value(self, epoch: int) -> float:
        return float(self._value(epoch))


@dataclass(frozen=True)
class Suite:
    """Base: a name, the full budget R, the direction, the parameters, and `curve(config, rng)`."""

    name: str
    max_epochs: int
    direction: str
    parameters: tuple[TableParameter, ...]
    metric: str

    def curve(self, config: Mapping[str, Any], rng: np.random.Generator) -> TrialCurve:  # pragma: no cover
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        """A TAO-format train schema whose AutoML parameters are this suite's (see module docstring)."""
        return suite_schema(self.parameters, max_epochs=self.max_epochs)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)


def _leaf(param: TableParameter) -> dict[str, Any]:
    if param.type == "categorical":
        return {"type": "categorical", "default": param.enum[0], "enum": list(param.enum), "automl_enabled": True,
                "title": param.name}
    low, high = param.minimum, param.maximum
    default = math.sqrt(low * high) if param.scale == "log" else (low + high) / 2
    if param.type == "int":
        default = int(round(default))
    leaf = {"type": param.type, "default": default, "minimum": low, "maximum": high, "automl_enabled": True,
            "title": param.name, "x_scale": param.scale}
    return leaf


def suite_schema(parameters: Sequence[TableParameter], *, max_epochs: int) -> dict[str, Any]:
    """TAO-format schema: `results_dir`, `train.{num_epochs, resume_training_checkpoint_path,
    pretrained_model_path}` (what the engine–trainer contract needs) plus one leaf per parameter at its
    dotted name."""
    properties: dict[str, Any] = {
        "results_dir": {"type": "string", "default": ""},
        "train": {"type": "collection", "properties": {
            "num_epochs": {"type": "int", "default": max_epochs, "minimum": 1, "maximum": 100000},
            "resume_training_checkpoint_path": {"type": "string", "default": ""},
            "pretrained_model_path": {"type": "string", "default": ""},
        }},
    }
    default: dict[str, Any] = {"results_dir": "", "train": {"num_epochs": max_epochs,
                                                            "resume_training_checkpoint_path": "",
                                                            "pretrained_model_path": ""}}
    for param in parameters:
        *parents, leaf = param.name.split(".")
        node, defaults = properties, default
        for part in parents:
            node = node.setdefault(part, {"type": "collection", "properties": {}})["properties"]
            defaults = defaults.setdefault(part, {})
        node[leaf] = _leaf(param)
        defaults[leaf] = node[leaf]["default"]
    return {
        "type": "object", "properties": properties, "default": default, "required": [], "popular": {},
        "automl_default_parameters": sorted(p.name for p in parameters), "automl_disabled_parameters": [],
        "x_tao_schema": {"action": "train", "model": "benchmark", "network_arch": "benchmark",
                         "schema_version": "1", "source": "benchmarks/search_efficiency"},
    }


# ------------------------------------------------------------------------------------------- Hartmann


def _hartmann_classes(dims: int, preset: str) -> tuple[type, tuple[float, float]]:
    """mf-prior-bench's generator class and the preset's (bias, noise), from its own benchmark classes."""
    from mfpbench.synthetic.hartmann import benchmark as mfh  # noqa: PLC0415 - benchmark environment only

    cls = getattr(mfh, f"MFHartmann{dims}Benchmark{preset.capitalize()}")
    return cls.mfh_generator_type, tuple(cls.mfh_bias_noise)


@dataclass(frozen=True)
class HartmannSuite(Suite):
    dims: int = 3
    preset: str = "good"

    @cached_property
    def _generator(self) -> Any:
        generator_type, (bias, noise) = _hartmann_classes(self.dims, self.preset)
        return generator_type(n_fidelities=self.max_epochs, fidelity_bias=bias, fidelity_noise=noise, seed=None)

    def curve(self, config: Mapping[str, Any], rng: np.random.Generator) -> TrialCurve:
        xs = tuple(float(config[name]) for name in self.names)
        generator = self._generator
        final = generator(z=self.max_epochs, Xs=xs)
        return TrialCurve(config, lambda epoch: generator(z=epoch, Xs=xs), final - HARTMANN_OPTIMUM[self.dims],
                          lambda epoch: 1.0)


def hartmann_suite(dims: int, preset: str, *, max_epochs: int = 27) -> HartmannSuite:
    if dims not in HARTMANN_OPTIMUM or preset not in HARTMANN_PRESETS:
        raise ValueError(f"no Hartmann suite mfh{dims}_{preset}; dims 3 or 6, presets {', '.join(HARTMANN_PRESETS)}")
    parameters = tuple(TableParameter(f"hp.x{i}", "float", 0.0, 1.0) for i in range(dims))
    return HartmannSuite(name=f"mfh{dims}_{preset}", max_epochs=max_epochs, direction="minimize",
                         parameters=parameters, metric="value", dims=dims, preset=preset)


# --------------------------------------------------------------------------------------------- tables


def _dotted(name: str) -> str:
    return name if "." in name else f"hp.{name}"


@dataclass(frozen=True)
class TableSuite(Suite):
    table: CurveTable | None = None

    @cached_property
    def _lookup(self) -> tuple[NearestConfig, np.ndarray, float]:
        table = self.table
        assert table is not None
        configs = [{_dotted(k): v for k, v in c.items()} for c in table.configs]
        nearest = NearestConfig(self.parameters, configs)
        final = table.curves[:, :, -1].mean(axis=1)
        optimum = float(final.max() if self.direction == "maximize" else final.min())
        return nearest, final, optimum

    def index(self, config: Mapping[str, Any]) -> int:
        return self._lookup[0].index(config)

    def curve(self, config: Mapping[str, Any], rng: np.random.Generator) -> TrialCurve:
        table = self.table
        assert table is not None
        nearest, final, optimum = self._lookup
        index = nearest.index(config)
        seed = int(rng.integers(table.n_seeds))
        values = table.curves[index, seed]
        regret = optimum - final[index] if self.direction == "maximize" else final[index] - optimum
        seconds = table.epoch_seconds[index] if table.epoch_seconds is not None else None
        return TrialCurve(config, lambda epoch: values[epoch - 1], regret,
                          (lambda epoch: float(seconds[epoch - 1])) if seconds is not None else (lambda epoch: 1.0))


def table_suite(table: CurveTable) -> TableSuite:
    parameters = tuple(TableParameter(_dotted(p.name), p.type, p.minimum, p.maximum, p.scale, p.enum)
                       for p in table.parameters)
    return TableSuite(name=table.name, max_epochs=table.max_epochs, direction=table.direction,
                      parameters=parameters, metric=table.metric, table=table)


# ------------------------------------------------------------------------------------------- registry

BUNDLED_TABLES = {"sklearn_mlp": DATA_DIR / "sklearn_mlp.json.gz",
                  "mask2former_tiny": DATA_DIR / "mask2former_tiny.json.gz"}
HARTMANN_SUITES = tuple(f"mfh{d}_{p}" for d in (3, 6) for p in HARTMANN_PRESETS)


def suite_names() -> tuple[str, ...]:
    return HARTMANN_SUITES + tuple(name for name, path in BUNDLED_TABLES.items() if path.is_file())


def get_suite(name: str) -> Suite:
    """A suite by name (see `suite_names()`), or a curve table by file path. A Hartmann suite may name another
    full budget R as `mfh3_good@9` (the cross-check's small case)."""
    if name.startswith("mfh") and "_" in name:
        base, _, budget = name.partition("@")
        dims, preset = base[3:].split("_", 1)
        if dims.isdigit() and (not budget or budget.isdigit()):
            suite = hartmann_suite(int(dims), preset, max_epochs=int(budget) if budget else 27)
            return suite if not budget else HartmannSuite(
                name=name, max_epochs=suite.max_epochs, direction=suite.direction, parameters=suite.parameters,
                metric=suite.metric, dims=suite.dims, preset=suite.preset)
    if name in BUNDLED_TABLES:
        return table_suite(load_table(BUNDLED_TABLES[name]))
    path = Path(name)
    if path.suffix == ".gz" or path.is_file():
        return table_suite(load_table(path))
    raise ValueError(f"unknown suite {name!r}; known: {', '.join(suite_names())}, or a curve table file (*.json.gz)")
