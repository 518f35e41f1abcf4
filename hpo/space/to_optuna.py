"""Optuna side of the search space: plain distributions and a sampler that honours option weights.

`distributions(space)` maps an unconditional space to `FloatDistribution`/`IntDistribution`/
`CategoricalDistribution` (for `study.ask(fixed_distributions=...)` or Ray's OptunaSearch with a
dict space). Conditional spaces go define-by-run through `SearchSpace.suggest(trial)`.

Optuna has no notion of option weights, so `WeightedStartupSampler` wraps any sampler: while the
study is in its startup phase (fewer finished trials than the base sampler's `n_startup_trials`,
forever for a random base sampler) every weighted categorical draw is made with the schema's
weights; everything else, and everything after startup, is the base sampler's. Model-based samplers
thus start from the distribution the schema author intended and then learn from results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import TrialState

from hpo.space import ir
from skillkit.errors import SearchSpaceError

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

    from hpo.space.space import SearchSpace

DEFAULT_STARTUP_TRIALS = 10  # TPESampler's default


def static_distributions(space: SearchSpace, *, epoch_budget: int | None = None) -> dict[str, BaseDistribution]:
    """Primitive draw name → Optuna distribution, for every space (see `hpo.space.static`): what
    `SearchSpace.suggest` asks a trial for, the same in every trial."""
    from hpo.space import static

    out: dict[str, BaseDistribution] = {}
    for dim in space.static_dimensions(epoch_budget=epoch_budget):
        if dim.kind == static.FLOAT:
            out[dim.name] = FloatDistribution(dim.low, dim.high, log=dim.log, step=dim.step)
        elif dim.kind == static.INT:
            out[dim.name] = IntDistribution(int(dim.low), int(dim.high), log=dim.log, step=int(dim.step or 1))
        else:
            out[dim.name] = CategoricalDistribution(list(dim.choices))
    return out


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """Dotted name → Optuna distribution; `SearchSpaceError` for conditional spaces."""
    if space.is_conditional:
        raise SearchSpaceError(
            "the search space is conditional (" + ", ".join(space.conditional_names) + " depend on other values or "
            "are assembled from several draws); use define-by-run: SearchSpace.suggest(trial)."
        )
    out: dict[str, BaseDistribution] = {}
    for param in space.parameters:
        if param.kind == ir.FLOAT:
            out[param.name] = FloatDistribution(param.low, param.high, log=param.scale == "log", step=param.step)
        elif param.kind == ir.INT:
            out[param.name] = IntDistribution(int(param.low), int(param.high), log=param.scale == "log", step=int(param.step or 1))
        else:
            out[param.name] = CategoricalDistribution(list(param.options))
    return out


class WeightedStartupSampler(BaseSampler):
    """Wraps `base` (default: `RandomSampler`); weighted categorical draws during startup.

    weights: Optuna parameter name → (choices, probabilities), from `SearchSpace.categorical_weights()`.
    n_startup_trials: finished (complete or pruned) trials after which the base sampler takes over;
    None means the base's own `n_startup_trials` (TPE: 10), or always for a `RandomSampler` base.
    seed: seeds the weighted draws (and the default random base), so equal seeds give equal studies.
    Relative sampling, trial hooks and reseeding are delegated to the base sampler.
    """

    def __init__(
        self,
        weights: Mapping[str, tuple[tuple[Any, ...], tuple[float, ...]]],
        *,
        base: BaseSampler | None = None,
        seed: int | None = None,
        n_startup_trials: int | None = None,
    ) -> None:
        self._base = base if base is not None else RandomSampler(seed=seed)
        self._weights = {name: (tuple(choices), tuple(probs)) for name, (choices, probs) in weights.items()}
        if n_startup_trials is None and not isinstance(self._base, RandomSampler):
            n_startup_trials = int(getattr(self._base, "_n_startup_trials", DEFAULT_STARTUP_TRIALS))
        if n_startup_trials is not None and n_startup_trials < 0:
            raise SearchSpaceError(f"n_startup_trials must be >= 0, got {n_startup_trials}.")
        self._n_startup_trials = n_startup_trials
        self._rng = np.random.RandomState(seed)

    @property
    def base(self) -> BaseSampler:
        return self._base

    def _in_startup(self, study: Study) -> bool:
        if self._n_startup_trials is None:
            return True
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        return len(finished) < self._n_startup_trials

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        entry = self._weights.get(param_name)
        if entry is not None and isinstance(param_distribution, CategoricalDistribution) and self._in_startup(study):
            choices, probs = entry
            by_choice = dict(zip(choices, probs))
            p = np.array([by_choice.get(choice, 0.0) for choice in param_distribution.choices], dtype=float)
            if p.sum() > 0:
                index = int(self._rng.choice(len(p), p=p / p.sum()))
                return param_distribution.choices[index]
        return self._base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._base.reseed_rng()


def create_study(space: SearchSpace, *, seed: int | None = None, base: BaseSampler | None = None, **kwargs: Any) -> optuna.Study:
    """An Optuna study whose sampler honours the space's option weights (convenience for tests/CLI)."""
    return optuna.create_study(sampler=space.optuna_sampler(base, seed=seed), **kwargs)
