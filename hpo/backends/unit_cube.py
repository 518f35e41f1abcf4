"""The static space as the unit cube [0, 1]^d, and a base for Optuna samplers that propose whole points in it.

Why: differential evolution (`dehb`) and batch Bayesian optimisation (`bfbo`) work on vectors — mutation adds
scaled differences of configurations, a Gaussian process measures distances between them — so every static
dimension (`hpo.space.static`: one fixed distribution per primitive draw) gets one coordinate:

- a float or integer dimension: its position between low and high, on the log scale when the dimension is
  log-scaled; decoding snaps to the dimension's step (a `/ 8` hidden size stays on its grid) or to integers;
- a choice: option i of n sits at (i + 0.5) / n, and a coordinate decodes to the option whose bin holds it
  (as TAO's DEHB and BFBO encode categoricals; option weights shape only random draws).

`CubeSampler` asks its subclass for one vector per trial (`propose`) and hands Optuna the decoded static
values as relative parameters, so the space's define-by-run `suggest` receives exactly that point and every
relation of the space still holds (`hpo.space.static.decode`). When the subclass has nothing to propose
yet (too few results), the trial is drawn at random, with the schema's option weights through the space's
`WeightedStartupSampler` wrapper. Randomness is derived from (seed, trial number), so a resumed driver or a
second worker proposes what the first would have.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from hpo.space import static

if TYPE_CHECKING:
    from optuna.study import Study

    from hpo.space import SearchSpace


PROPOSAL_ATTR = "hpo_proposal"


class Proposal(NamedTuple):
    vector: np.ndarray
    note: Mapping[str, Any]


class UnitCube:
    """Static point ↔ vector in [0, 1]^d over `dimensions` (see the module docstring)."""

    def __init__(self, dimensions: Sequence[static.Dimension]) -> None:
        self.dimensions = tuple(dimensions)
        self.names = tuple(dim.name for dim in self.dimensions)

    def __len__(self) -> int:
        return len(self.dimensions)

    def encode(self, point: Mapping[str, Any]) -> np.ndarray:
        return np.array([_encode(dim, point[dim.name]) for dim in self.dimensions], dtype=float)

    def decode(self, vector: np.ndarray) -> dict[str, Any]:
        return {dim.name: _decode(dim, float(x)) for dim, x in zip(self.dimensions, np.clip(vector, 0.0, 1.0))}

    def snap(self, vectors: np.ndarray) -> np.ndarray:
        """Each row moved to the vector of the point it decodes to (a choice's bin centre, a step's grid
        point): the vectors of real configurations, where a model's predictions are about real trials."""
        out = np.clip(np.array(np.atleast_2d(vectors), dtype=float), 0.0, 1.0)
        for column, dim in enumerate(self.dimensions):
            out[:, column] = _snap_column(dim, out[:, column])
        return out

    def covers(self, params: Mapping[str, Any]) -> bool:
        """Whether `params` (a trial's) holds a value for every dimension."""
        return all(name in params for name in self.names)


def _bounds(dim: static.Dimension) -> tuple[float, float]:
    if dim.low is None or dim.high is None:
        raise ValueError(f"numeric dimension {dim.name!r} has no bounds")
    return float(dim.low), float(dim.high)


def _encode(dim: static.Dimension, value: Any) -> float:
    if dim.kind == static.CATEGORICAL:
        choices = list(dim.choices or ())
        index = next((i for i, c in enumerate(choices) if c == value), 0)
        return (index + 0.5) / len(choices)
    low, high = _bounds(dim)
    if high <= low:
        return 0.5
    if dim.log:
        return (math.log(float(value)) - math.log(low)) / (math.log(high) - math.log(low))
    return (float(value) - low) / (high - low)


def _decode(dim: static.Dimension, x: float) -> Any:
    if dim.kind == static.CATEGORICAL:
        choices = list(dim.choices or ())
        return choices[min(int(x * len(choices)), len(choices) - 1)]
    low, high = _bounds(dim)
    if high <= low:
        value = low
    elif dim.log:
        value = math.exp(math.log(low) + x * (math.log(high) - math.log(low)))
    else:
        value = low + x * (high - low)
    if dim.step is not None:
        steps = round((value - low) / float(dim.step))
        value = min(max(low + steps * float(dim.step), low), high)
        value = round(value, 12)
    if dim.kind == static.INT:
        return int(min(max(round(value), int(low)), int(high)))
    return float(min(max(value, low), high))


def _snap_column(dim: static.Dimension, x: np.ndarray) -> np.ndarray:
    """`_encode(_decode(x))` for a whole column at once (the acquisition is scored on thousands of rows)."""
    if dim.kind == static.CATEGORICAL:
        n = len(dim.choices or ())
        return (np.minimum(np.floor(x * n), n - 1) + 0.5) / n
    low, high = _bounds(dim)
    if high <= low:
        return np.full_like(x, 0.5)
    value = np.exp(math.log(low) + x * (math.log(high) - math.log(low))) if dim.log else low + x * (high - low)
    if dim.step is not None:
        value = np.clip(low + np.round((value - low) / float(dim.step)) * float(dim.step), low, high)
    if dim.kind == static.INT:
        value = np.clip(np.round(value), int(low), int(high))
    if dim.log:
        return (np.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


class CubeSampler(BaseSampler):
    """A sampler proposing one whole static point per trial; subclasses implement `propose`.

    `propose(study, trial, rng)` returns a `Proposal` — a vector in [0, 1]^d and a JSON-able note on how it
    was made, stored as the trial's `hpo_proposal` system attribute — or None (draw this trial at random). The
    relative search space is the whole static space, the same for every trial (`hpo.space.static`).
    """

    def __init__(self, space: SearchSpace, *, seed: int, epoch_budget: int | None) -> None:
        from hpo.space.to_optuna import static_distributions

        self.cube = UnitCube(space.static_dimensions(epoch_budget=epoch_budget))
        self._distributions = static_distributions(space, epoch_budget=epoch_budget)
        self.seed = int(seed)
        self._random = RandomSampler(seed=seed)

    def rng(self, trial: FrozenTrial) -> np.random.Generator:
        return np.random.default_rng([self.seed, trial.number])

    def points(self, study: Study, states: tuple[TrialState, ...]) -> list[tuple[FrozenTrial, np.ndarray]]:
        """(trial, its vector) of the study's trials in `states` whose point is complete."""
        return [(t, self.cube.encode(t.params)) for t in study.get_trials(deepcopy=False, states=states)
                if self.cube.covers(t.params)]

    def propose(self, study: Study, trial: FrozenTrial, rng: np.random.Generator) -> Proposal | None:
        raise NotImplementedError

    # -- Optuna's sampler API ------------------------------------------------------------------------------
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        proposal = self.propose(study, trial, self.rng(trial))
        if proposal is None:
            return {}
        # How this point came about, kept with the trial (tests and post-mortems read it).
        study._storage.set_trial_system_attr(trial._trial_id, PROPOSAL_ATTR, dict(proposal.note))
        point = self.cube.decode(proposal.vector)
        return {name: value for name, value in point.items() if name in search_space}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()
