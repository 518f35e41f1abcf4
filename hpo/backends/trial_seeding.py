"""Per-trial seeding of an Optuna sampler, so a resumed sweep draws what the uninterrupted one would have.

Why: Optuna's samplers keep one random stream for the whole study, seeded once when the sampler is built.
A driver that is killed and resumed builds a new sampler, whose stream starts over: the trials it asks for
after the resume get other params than the same-seed sweep without the fault would have given them. Here
every random state inside the sampler (its own and its fallback samplers', e.g. TPE's startup
`RandomSampler`, the space's weighted-startup draws) is reset before each trial to a state derived from
(sweep seed, trial number). A trial's draw then depends only on the seed, its number and the study's
history, which is exactly what a resumed study restores from storage.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import optuna
from optuna.samplers import BaseSampler
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.trial import FrozenTrial, TrialState


def _random_states(sampler: Any, seen: set[int]) -> Iterator[tuple[str, np.random.RandomState]]:
    """(path, state) for every numpy RandomState held by `sampler` or by the samplers it wraps."""
    if id(sampler) in seen:
        return
    seen.add(id(sampler))
    for name, value in sorted(vars(sampler).items()):
        if isinstance(value, LazyRandomState):
            yield name, value.rng
        elif isinstance(value, np.random.RandomState):
            yield name, value
        elif isinstance(value, BaseSampler):
            for inner, state in _random_states(value, seen):
                yield f"{name}.{inner}", state


def trial_seed(seed: int, number: int, path: str) -> int:
    """The 32-bit seed of the random state at `path` for trial `number` of a sweep seeded `seed`."""
    entropy = [int(seed) & 0xFFFFFFFF, int(number), *path.encode()]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


class TrialSeededSampler(BaseSampler):
    """Wraps `base`; before each trial every random state in it is reseeded from (seed, trial number)."""

    def __init__(self, base: BaseSampler, seed: int) -> None:
        self._base = base
        self._seed = int(seed)

    @property
    def base(self) -> BaseSampler:
        return self._base

    def reseed_for(self, number: int) -> None:
        for path, state in _random_states(self._base, set()):
            state.seed(trial_seed(self._seed, number, path))

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: Any) -> Any:
        return self._base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.reseed_for(trial.number)
        self._base.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()
