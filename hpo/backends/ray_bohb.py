"""Ray Tune's BOHB searcher on the compiled space's static form.

Why not hand Ray a Tune param space: Tune's conversion to ConfigSpace drops quantisation (a `/ 8` hidden
size would be proposed off its grid), ignores option weights and cannot express a range that moves with
another parameter. Here the ConfigSpace is built from `SearchSpace.static_dimensions()` in one place:

- a continuous dimension → `UniformFloatHyperparameter` (log when its scale is log);
- an integer dimension → `UniformIntegerHyperparameter`; a stepped one (integers or floats on a grid, such as
  a `/ 8` hidden size) → a `UniformIntegerHyperparameter` over the INDEX of its grid points (hpbandster's
  BOHB refuses ordinal hyperparameters), so every proposal is on the grid;
- a choice → `CategoricalHyperparameter` with the schema's option weights;
- a relational child is its fraction of the feasible range above its parent (`hpo.space.static`).

`SpaceBOHB.suggest` maps the proposed static point back to the configuration (`space.decode`) before Tune
sees it, so trial configs, specs and records hold real parameter values, and every relation holds. BOHB keeps
the static point for each trial (`trial_to_params`) and learns on it, one model per budget: the partial
results of the HyperBand rungs are fed as exactly that (their budget), never as full-budget scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ray.tune.search.bohb import TuneBOHB

from hpo.driver.context import plain
from hpo.space import SearchSpace, static


def stepped_levels(space: SearchSpace, *, epoch_budget: int | None = None) -> dict[str, list[Any]]:
    """Grid points of every stepped dimension (BOHB searches their index)."""
    return {dim.name: static.grid_levels(dim, int(round((dim.high - dim.low) / dim.step)) + 1)
            for dim in space.static_dimensions(epoch_budget=epoch_budget)
            if dim.kind != static.CATEGORICAL and dim.step is not None and dim.low != dim.high}


def config_space(space: SearchSpace, *, epoch_budget: int | None = None) -> Any:
    """The ConfigSpace of `space`'s static dimensions (see module docstring)."""
    import ConfigSpace

    stepped = stepped_levels(space, epoch_budget=epoch_budget)
    configuration = ConfigSpace.ConfigurationSpace()
    for dim in space.static_dimensions(epoch_budget=epoch_budget):
        if dim.kind == static.CATEGORICAL:
            hyper: Any = ConfigSpace.CategoricalHyperparameter(dim.name, choices=list(dim.choices),
                                                               weights=list(dim.weights) if dim.weights else None)
        elif dim.low == dim.high:
            hyper = ConfigSpace.Constant(dim.name, dim.low)
        elif dim.name in stepped:
            hyper = ConfigSpace.UniformIntegerHyperparameter(dim.name, lower=0, upper=len(stepped[dim.name]) - 1)
        elif dim.kind == static.INT:
            hyper = ConfigSpace.UniformIntegerHyperparameter(dim.name, lower=int(dim.low), upper=int(dim.high),
                                                             log=dim.log)
        else:
            hyper = ConfigSpace.UniformFloatHyperparameter(dim.name, lower=float(dim.low), upper=float(dim.high),
                                                           log=dim.log)
        configuration.add(hyper)
    return configuration


class SpaceBOHB(TuneBOHB):
    """`TuneBOHB` over `config_space(space)` whose suggestions are decoded into configurations."""

    def __init__(self, *, space: SearchSpace, epoch_budget: int, metric: str, mode: str, seed: int,
                 points_to_evaluate: Sequence[Mapping[str, Any]] | None = None) -> None:
        self.hpo_space = space
        self.epoch_budget = epoch_budget
        self.stepped = stepped_levels(space, epoch_budget=epoch_budget)
        points = [self._to_bohb(p) for p in points_to_evaluate] if points_to_evaluate else None
        super().__init__(space=config_space(space, epoch_budget=epoch_budget), metric=metric, mode=mode, seed=seed,
                         points_to_evaluate=points)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # metric, mode and space come from the constructor; Tune's param_space is empty

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        point = super().suggest(trial_id)
        if not isinstance(point, Mapping):
            return point  # None (concurrency limit) or Searcher.FINISHED
        static_point = {name: (self.stepped[name][int(value)] if name in self.stepped else value)
                        for name, value in plain(point).items()}
        return plain(self.hpo_space.decode(static_point, epoch_budget=self.epoch_budget))

    def _to_bohb(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """A static point (a planned trial) in BOHB's encoding: stepped values as their grid index."""
        out = dict(point)
        for name, levels in self.stepped.items():
            out[name] = min(range(len(levels)), key=lambda i: abs(levels[i] - point[name]))
        return out
