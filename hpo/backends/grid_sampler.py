"""Grid search over the static space without materialising the grid.

Why not Optuna's `GridSampler`: it builds the list of every combination up front. The real default space has
16 dimensions; at 3 levels each that is 43 million combinations (gigabytes) before the first trial, for a
sweep that runs a few dozen of them. Here trial number k visits grid point `order(k)`, an affine full-cycle
permutation of the grid's N points (`(a·k + c) mod N` with gcd(a, N) = 1, a and c drawn from the seed), decoded
digit by digit (mixed radix). So:

- no point is visited twice while k < N, the visits are spread over the whole grid (not the corner of the first
  dimensions a lexicographic order would exhaust first), and the order is a pure function of (grid, seed):
  several workers sharing a study and a resumed driver agree, with nothing kept in memory or storage;
- `first_points(n)` is what trials 0..n-1 will run, so `hpo plan` can show the first batch exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from skillkit.errors import SweepConfigError


class GridOrder:
    """The visiting order of a grid: name → levels, point k → {name: level}."""

    def __init__(self, grid: Mapping[str, Sequence[Any]], seed: int) -> None:
        self.names = list(grid)
        self.levels = [list(grid[name]) for name in self.names]
        if any(not levels for levels in self.levels):
            empty = [n for n, levels in zip(self.names, self.levels) if not levels]
            raise SweepConfigError(f"grid: no levels for {empty}.")
        self.size = math.prod(len(levels) for levels in self.levels)
        rng = np.random.default_rng([int(seed), 0x6E1D])
        multiplier = int(rng.integers(1, 2**61)) % self.size or 1
        while math.gcd(multiplier, self.size) != 1:
            multiplier = multiplier % self.size + 1
        self.multiplier = multiplier
        self.offset = int(rng.integers(0, 2**61)) % self.size

    def point(self, k: int) -> dict[str, Any]:
        index = (self.multiplier * (k % self.size) + self.offset) % self.size
        out: dict[str, Any] = {}
        for name, levels in zip(self.names, self.levels):
            index, digit = divmod(index, len(levels))
            out[name] = levels[digit]
        return out

    def first_points(self, n: int) -> list[dict[str, Any]]:
        return [self.point(k) for k in range(min(n, self.size))]


class LazyGridSampler(BaseSampler):
    """Trial number k gets `GridOrder.point(k)`; every parameter must be a grid dimension."""

    def __init__(self, grid: Mapping[str, Sequence[Any]], *, seed: int) -> None:
        self.order = GridOrder(grid, seed)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        point = self.order.point(trial.number)
        if param_name not in point:
            raise SweepConfigError(f"grid: parameter '{param_name}' is not a grid dimension ({', '.join(point)}).")
        return point[param_name]
