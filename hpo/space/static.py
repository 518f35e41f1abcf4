"""The static form of a search space: one fixed distribution per primitive draw, and the map back.

Why: model-based samplers (Optuna's GP, CMA-ES and multivariate TPE, Ray's BOHB through ConfigSpace) learn
a joint model over a FIXED set of dimensions. A parameter whose range moves with another one (a relational
child such as `test_max_size >= test_min_size`) leaves that set: Optuna drops it from the relative space and
draws it with the random sampler, BOHB cannot express it at all. `hpo.space.draw` therefore draws every
parameter through primitive draws whose distributions never depend on other values (a relational child
draws its fraction of the feasible range, `<name>#fraction`; lists draw every element and their length).

This module exposes that structure:

- `dimensions(space)`: the primitive draws as `Dimension`s (name, kind, bounds, scale, step, choices,
  weights, owning parameter), in draw order. They are the same for every configuration (tested), so they
  are the static space a backend builds its distributions / ConfigSpace / grid from.
- `sample(space, rng)`: a random configuration together with its static values (the plan's first batch
  is enqueued in this form, so it runs exactly as shown).
- `decode(space, static_values)`: the configuration a static point stands for (mapped back before the
  trial spec is written); it always satisfies every relation of the space.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo.space.draw import RandomDrawer, draw_parameter
from skillkit.errors import SearchSpaceError

if TYPE_CHECKING:
    from hpo.space.space import SearchSpace

FLOAT = "float"
INT = "int"
CATEGORICAL = "categorical"
# Epoch lists need a budget even when only their shape is wanted; any value >= 2 gives the same dimensions.
_SHAPE_BUDGET = 10


@dataclass(frozen=True)
class Dimension:
    """One primitive draw: `kind` float | int | categorical, inclusive `low`/`high`, `log`, `step`, or
    `choices` with optional `weights`; `owner` is the parameter whose value it helps build."""

    name: str
    kind: str
    owner: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None
    weights: tuple[float, ...] | None = None

    @property
    def bounds(self) -> tuple[float | int, float | int]:
        """(low, high) of a float or int dimension (a categorical one has none)."""
        if self.low is None or self.high is None:
            raise SearchSpaceError(f"dimension '{self.name}' ({self.kind}) has no low/high bounds.")
        return self.low, self.high

    def contains(self, value: Any) -> bool:
        if self.kind == CATEGORICAL:
            return any(value == c and type(value) is type(c) for c in self.choices or ())
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.kind == INT and not float(value).is_integer():
            return False
        low, high = self.bounds
        return low <= value <= high


class _Recorder:
    """A drawer that records every primitive draw (its distribution, and the value the inner drawer gave)."""

    def __init__(self, inner: Any, owner: list[str]) -> None:
        self.inner = inner
        self.owner = owner
        self.dimensions: list[Dimension] = []
        self.values: dict[str, Any] = {}

    def float(self, name: str, low: float, high: float, *, log: bool, step: float | None) -> float:
        self.dimensions.append(Dimension(name, FLOAT, self.owner[0], low=low, high=high, log=log, step=step))
        return self._keep(name, self.inner.float(name, low, high, log=log, step=step))

    def int(self, name: str, low: int, high: int, *, log: bool, step: int | None) -> int:
        self.dimensions.append(Dimension(name, INT, self.owner[0], low=int(low), high=int(high), log=log,
                                         step=int(step) if step not in (None, 1) else None))
        return self._keep(name, self.inner.int(name, low, high, log=log, step=step))

    def categorical(self, name: str, choices: Sequence[Any], probabilities: Sequence[builtins.float] | None) -> Any:
        self.dimensions.append(Dimension(name, CATEGORICAL, self.owner[0], choices=tuple(choices),
                                         weights=tuple(probabilities) if probabilities is not None else None))
        return self._keep(name, self.inner.categorical(name, choices, probabilities))

    def _keep(self, name: str, value: Any) -> Any:
        self.values[name] = value
        return value


class _Fixed:
    """A drawer that answers every primitive draw from a static point (checked against its distribution)."""

    def __init__(self, point: Mapping[str, Any]) -> None:
        self.point = point

    def _value(self, name: str) -> Any:
        if name not in self.point:
            raise SearchSpaceError(f"the static point lacks a value for '{name}'.")
        return self.point[name]

    def float(self, name: str, low: float, high: float, *, log: bool, step: float | None) -> float:
        value = float(self._value(name))
        if not low <= value <= high:
            raise SearchSpaceError(f"static value {name}={value!r} is outside [{low}, {high}].")
        return value

    def int(self, name: str, low: int, high: int, *, log: bool, step: int | None) -> int:
        value = self._value(name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not low <= value <= high:
            raise SearchSpaceError(f"static value {name}={value!r} is not an integer in [{low}, {high}].")
        return int(value)

    def categorical(self, name: str, choices: Sequence[Any], probabilities: Sequence[builtins.float] | None) -> Any:
        value = self._value(name)
        for choice in choices:
            if value == choice and (type(value) is type(choice) or isinstance(value, np.generic)):
                return choice
        raise SearchSpaceError(f"static value {name}={value!r} is not one of {list(choices)}.")


def _run(space: SearchSpace, drawer: Any, epoch_budget: int | None) -> dict[str, Any]:
    owner = [""]
    recorder = drawer if isinstance(drawer, _Recorder) else None
    if recorder is not None:
        recorder.owner = owner
    values: dict[str, Any] = {}
    for param in space.parameters:
        owner[0] = param.name
        values[param.name] = draw_parameter(param, drawer, values, space.fixed, epoch_budget=epoch_budget)
    return values


def dimensions(space: SearchSpace, *, epoch_budget: int | None = None) -> tuple[Dimension, ...]:
    """The primitive draws of `space`, in draw order (the same for every configuration)."""
    recorder = _Recorder(RandomDrawer(np.random.default_rng(0)), [""])
    _run(space, recorder, epoch_budget if epoch_budget is not None else _SHAPE_BUDGET)
    return tuple(recorder.dimensions)


def sample(space: SearchSpace, rng: np.random.Generator, *, epoch_budget: int | None = None
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(configuration, its static point): one random draw with option weights honoured."""
    recorder = _Recorder(RandomDrawer(rng), [""])
    values = _run(space, recorder, epoch_budget)
    return values, dict(recorder.values)


def decode(space: SearchSpace, point: Mapping[str, Any], *, epoch_budget: int | None = None) -> dict[str, Any]:
    """The configuration a static point stands for; raises SearchSpaceError for a point outside the space."""
    return _run(space, _Fixed(point), epoch_budget)


def grid_levels(dimension: Dimension, points: int) -> list[Any]:
    """`points` levels of a numeric dimension (log-spaced on a log scale, snapped to its step or to integers,
    ends included), every choice of a categorical one."""
    if dimension.kind == CATEGORICAL:
        return list(dimension.choices or ())
    low, high = dimension.bounds
    if points < 1:
        raise SearchSpaceError(f"grid needs at least one level per dimension, got {points}.")
    if points == 1 or low == high:
        raw = [(low + high) / 2 if not dimension.log else math.sqrt(low * high)]
    else:
        raw = list(np.geomspace(low, high, points) if dimension.log else np.linspace(low, high, points))
    if dimension.kind == INT or dimension.step is not None:
        step = dimension.step or 1
        snapped = sorted({low + round((v - low) / step) * step for v in raw})
        levels = [min(max(v, low), high) for v in snapped]
        return [int(v) for v in levels] if dimension.kind == INT else [float(round(v, 12)) for v in levels]
    return sorted({float(v) for v in raw})
