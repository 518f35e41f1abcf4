"""Ray Tune side of the search space.

- `param_space(space)`: dotted name → Tune domain for unconditional spaces (Tune's own random
  search, grid-free variant generation, ASHA/HyperBand/PBT schedulers). Bounds are converted here,
  in one tested place, from our inclusive convention to Tune's mixed one (`randint`/`lograndint`
  exclude their upper bound, `qrandint` with q > 1 includes it). Weighted options use a Tune
  `Categorical` domain with a weighted sampler, so `tune.choice`'s uniform draw is not used for them.
- Conditional spaces take the Optuna-searcher route: `define_by_run(space)` is the function Tune's
  `OptunaSearch(space=...)` calls with a trial, and `optuna_search(space, ...)` builds that searcher
  with a sampler that honours option weights. Tune's config then holds the final values under the
  parameter names plus sub-draws (`<name>#<i>`); `SearchSpace.select_values(config)` strips those.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo.space import ir
from skillkit.errors import SearchSpaceError

if TYPE_CHECKING:
    from hpo.space.space import SearchSpace


@functools.cache
def _weighted_choice_class() -> type:
    """Built on first use so importing `hpo.space` does not import Ray."""
    from ray.tune.search.sample import Sampler

    class WeightedChoice(Sampler):
        """Draws a category with fixed probabilities from Tune's (seedable) random state."""

        def __init__(self, probs: Sequence[float]) -> None:
            self.probs = np.asarray(probs, dtype=float)

        def sample(self, domain: Any, config: Any = None, size: int = 1, random_state: Any = None) -> Any:
            source = random_state if random_state is not None else np.random
            indices = np.atleast_1d(source.choice(len(domain.categories), size=size, p=self.probs))
            items = [domain.categories[int(i)] for i in indices]
            return items if len(items) > 1 else items[0]

        def __str__(self) -> str:
            return "WeightedChoice"

    return WeightedChoice


def weighted_choice(choices: Sequence[Any], probabilities: Sequence[float]) -> Any:
    """A Tune `Categorical` domain that draws `choices` with `probabilities`."""
    from ray.tune.search.sample import Categorical

    domain = Categorical(list(choices))
    domain.set_sampler(_weighted_choice_class()(probabilities))
    return domain


def param_space(space: SearchSpace) -> dict[str, Any]:
    """Dotted name → `ray.tune` domain; `SearchSpaceError` for conditional spaces."""
    if space.is_conditional:
        raise SearchSpaceError(
            "the search space is conditional (" + ", ".join(space.conditional_names) + "); Tune's param_space "
            "cannot express it — use hpo.space.to_ray.optuna_search(space, ...) (define-by-run)."
        )
    out: dict[str, Any] = {}
    for param in space.parameters:
        out[param.name] = _domain(param.kind, param.low, param.high, log=param.scale == "log", step=param.step,
                                  choices=param.choices, weights=param.weights)
    return out


def static_param_space(space: SearchSpace, *, epoch_budget: int | None = None) -> dict[str, Any]:
    """Primitive draw name → Tune domain, for every space (see `hpo.space.static`); a Tune config drawn from
    it is turned into the configuration with `space.decode(config)`. What Ray's BOHB searches."""
    from hpo.space import static

    return {dim.name: _domain({static.FLOAT: ir.FLOAT, static.INT: ir.INT}.get(dim.kind, ir.CATEGORICAL), dim.low,
                              dim.high, log=dim.log, step=dim.step, choices=dim.choices, weights=dim.weights)
            for dim in space.static_dimensions(epoch_budget=epoch_budget)}


def _domain(kind: str, low: Any, high: Any, *, log: bool, step: Any, choices: Any, weights: Any) -> Any:
    """One Tune domain from our inclusive bounds (the one place the conversion happens)."""
    from ray import tune

    if kind == ir.FLOAT:
        if step is not None:
            return tune.quniform(low, high, step)
        if log:
            return tune.loguniform(low, high)
        return tune.uniform(low, high)
    if kind == ir.INT:
        low, high = int(low), int(high)
        if log:
            return tune.lograndint(low, high + 1)   # upper bound exclusive in Tune
        if step not in (None, 1):
            return tune.qrandint(low, high, int(step))  # inclusive for q > 1
        return tune.randint(low, high + 1)   # upper bound exclusive in Tune
    if weights is not None:
        return weighted_choice(choices, weights)
    return tune.choice(list(choices))


def define_by_run(space: SearchSpace, *, epoch_budget: int | None = None) -> Callable[[Any], dict[str, Any]]:
    """The define-by-run function for `OptunaSearch(space=...)`: draws the space, returns final values."""

    def define(trial: Any) -> dict[str, Any]:
        return space.suggest(trial, epoch_budget=epoch_budget)

    return define


def optuna_search(
    space: SearchSpace,
    *,
    metric: str,
    mode: str,
    seed: int | None = None,
    epoch_budget: int | None = None,
    sampler: Any = None,
    points_to_evaluate: list[dict[str, Any]] | None = None,
    **kwargs: Any,
) -> Any:
    """Tune's `OptunaSearch` driven by the space's define-by-run function (works for any space).

    sampler: an Optuna sampler (default: TPE seeded with `seed`); it is wrapped so option weights shape
    the startup trials. Extra keyword arguments go to `OptunaSearch` (e.g. `storage`, `study_name`).
    """
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    base = sampler if sampler is not None else optuna.samplers.TPESampler(seed=seed)
    return OptunaSearch(
        space=define_by_run(space, epoch_budget=epoch_budget),
        metric=metric,
        mode=mode,
        sampler=space.optuna_sampler(base, seed=seed),
        points_to_evaluate=points_to_evaluate,
        **kwargs,
    )
