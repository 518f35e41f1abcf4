"""What builds each search algorithm's parts on each backend. The algorithm names, which backends run each, and
the sampler/scheduler names each resolves to are the sweep config's (`hpo.sweep.algorithms`); this module
keys its builders by those resolved names, and the backends only look builders up here.

Two tables:

- `SAMPLERS`: resolved sampler -> its Optuna sampler builder and its Ray searcher builder.
- `SCHEDULERS`: resolved scheduler -> its Optuna pruner builder and its Ray scheduler builder, whether Ray runs
  it in synchronous brackets, and the Ray search of a scheduler that brings its own proposals (PBT).

Optuna samplers: random → RandomSampler; tpe → TPESampler (multivariate; constant liar so parallel trials
spread out); bayesian → GPSampler; cmaes → CmaEsSampler; grid → `LazyGridSampler` over the static space
(`grid_points` levels per numeric dimension, every option of a choice, or explicit `grid_values`); dehb →
`DifferentialEvolutionSampler` (de_sampler.py: DE/rand/1/bin over the best results of one budget); bfbo →
`BatchGPSampler` (bfbo_sampler.py: GP expected improvement with local penalisation around the points of running
trials); mfbo → `SameBudgetTPESampler` (multivariate TPE on the results of one budget only, mfbo_sampler.py;
`n_startup_trials` = the fewest same-budget results it fits on). Every sampler sees the space's static form
(`hpo.space.static`: one fixed distribution per primitive draw, relational children as fractions of their
feasible range), so GP, CMA-ES and multivariate TPE model all parameters jointly; GP's and CMA-ES's
independent-sampling warning stays ON, so a parameter that ever escapes the joint model is reported, not
hidden (tests/engine/test_search_contract.py checks it). All but grid are wrapped by the space's
`optuna_sampler`, so schema option weights shape the startup trials, and then by `TrialSeededSampler`, so a
trial's draw depends on the seed and its number, not on when the driver last started.

Optuna pruners: none → NopPruner; median → MedianPruner (no pruning before grace_period epochs); asha →
SuccessiveHalvingPruner (min_resource = grace_period); hyperband → HyperbandPruner (min grace_period, max the
epoch budget); hyperband_es → `HyperbandESPruner` (curve_stop.py: the same Hyperband, and a trial whose
extrapolated learning curve cannot beat the incumbent is stopped too). Pruners see one intermediate value per
validation, at step = epochs trained.

Ray: every Optuna-backed sampler proposes through `SpaceSearcher` (ray_searcher.py); bohb through `SpaceBOHB`
(ray_bohb.py) with `HyperBandForBOHB`; pbt through Ray's variant generator drawing whole configurations, with
`space.perturb` as the explore step. Ray schedulers count `epochs_trained` (time_attr), so grace periods, rungs
and perturbation intervals are in epochs.

This module imports no backend library when imported: each builder imports what it builds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.sweep.algorithms import OPTUNA, RAY
from skillkit.errors import SweepConfigError

if TYPE_CHECKING:
    import optuna

    from hpo.driver.context import SweepContext
    from hpo.space import SearchSpace
    from hpo.sweep.config import AlgorithmConfig

    OptunaSamplerBuilder = Callable[[AlgorithmConfig, SearchSpace, int, int | None], optuna.samplers.BaseSampler]
    OptunaPrunerBuilder = Callable[[AlgorithmConfig, int], optuna.pruners.BasePruner]
    RaySchedulerBuilder = Callable[[AlgorithmConfig, int, SearchSpace, int], Any]
    # (ctx, planned static points, mode "max"|"min") -> (Ray search_alg or None, param_space)
    RaySearchBuilder = Callable[[SweepContext, Sequence[Mapping[str, Any]], str], tuple[Any, dict[str, Any]]]

# ------------------------------------------------------------------------------------------------ entries


@dataclass(frozen=True)
class Sampler:
    """Who proposes: `optuna` builds the study's sampler (None: not on Optuna), `ray` the Ray search."""

    name: str
    optuna: OptunaSamplerBuilder | None
    ray: RaySearchBuilder | None
    # The most distinct points it can propose, when finite (a grid): the trial budget is capped to it.
    points: Callable[[AlgorithmConfig, SearchSpace, int | None], int] | None = None


@dataclass(frozen=True)
class Scheduler:
    """Who stops early: `optuna` builds the study's pruner, `ray` the Tune scheduler (None: not there)."""

    name: str
    optuna: OptunaPrunerBuilder | None
    ray: RaySchedulerBuilder | None
    # Ray: creates a bracket's trials up front and parks them PAUSED (ray_backend.SLOT_RESOURCE explains why).
    synchronous: bool = False
    # Ray: the scheduler brings its own proposals and takes no searcher (PBT).
    ray_search: RaySearchBuilder | None = None


# ----------------------------------------------------------------------------------- Optuna samplers


def _seeded(space: SearchSpace, base: optuna.samplers.BaseSampler, seed: int,
            startup: int | None) -> optuna.samplers.BaseSampler:
    """`base` behind the space's weighted startup sampler, then made to draw by (seed, trial number): a resumed
    sweep samples what the uninterrupted one would have (hpo.backends.trial_seeding)."""
    from hpo.backends.trial_seeding import TrialSeededSampler

    return TrialSeededSampler(space.optuna_sampler(base, seed=seed, n_startup_trials=startup), seed)


def _random(algorithm: AlgorithmConfig, space: SearchSpace, seed: int, epoch_budget: int | None) -> Any:
    import optuna

    return _seeded(space, optuna.samplers.RandomSampler(seed=seed), seed, None)


def _tpe(algorithm: AlgorithmConfig, space: SearchSpace, seed: int, epoch_budget: int | None) -> Any:
    import optuna

    startup = algorithm.n_startup_trials
    base = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True, constant_liar=True)
    return _seeded(space, base, seed, startup)


def _bayesian(algorithm: AlgorithmConfig, space: SearchSpace, seed: int, epoch_budget: int | None) -> Any:
    import optuna

    startup = algorithm.n_startup_trials
    base = optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=True)
    return _seeded(space, base, seed, startup)


def _cmaes(algorithm: AlgorithmConfig, space: SearchSpace, seed: int, epoch_budget: int | None) -> Any:
    import optuna

    return _seeded(space, optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=True), seed, None)


def _grid(algorithm: AlgorithmConfig, space: SearchSpace, seed: int, epoch_budget: int | None) -> Any:
    from hpo.backends.grid_sampler import LazyGridSampler
    from hpo.backends.optuna_factory import grid_values

    return LazyGridSampler(grid_values(space, algorithm.grid_points, algorithm.grid_values,
                                       epoch_budget=epoch_budget), seed=seed)


def _grid_points(algorithm: AlgorithmConfig, space: SearchSpace, epoch_budget: int | None) -> int:
    from hpo.backends.optuna_factory import grid_size, grid_values

    return grid_size(grid_values(space, algorithm.grid_points, algorithm.grid_values, epoch_budget=epoch_budget))


def _dehb(algorithm: AlgorithmConfig, space: SearchSpace, seed: int, epoch_budget: int | None) -> Any:
    from hpo.backends.de_sampler import MIN_POPULATION, DifferentialEvolutionSampler

    base = DifferentialEvolutionSampler(space, seed=seed, epoch_budget=epoch_budget,
                                        mutation_factor=algorithm.mutation_factor,
                                        crossover_prob=algorithm.crossover_prob)
    return _seeded(space, base, seed, MIN_POPULATION)


def _bfbo(algorithm: AlgorithmConfig, space: SearchSpace, seed: int, epoch_budget: int | None) -> Any:
    from hpo.backends.bfbo_sampler import BatchGPSampler

    startup = algorithm.n_startup_trials
    return _seeded(space, BatchGPSampler(space, seed=seed, epoch_budget=epoch_budget, n_startup_trials=startup),
                   seed, startup)


def _mfbo(algorithm: AlgorithmConfig, space: SearchSpace, seed: int, epoch_budget: int | None) -> Any:
    from hpo.backends.mfbo_sampler import SameBudgetTPESampler, default_values

    startup = algorithm.n_startup_trials
    base = SameBudgetTPESampler(seed=seed, min_points=max(2, startup), first=default_values(space),
                                random_fraction=algorithm.random_fraction, model_budget=algorithm.model_budget,
                                surrogate=algorithm.surrogate)
    return _seeded(space, base, seed, startup)


# ------------------------------------------------------------------------------------- Optuna pruners


def _no_pruner(algorithm: AlgorithmConfig, max_epochs: int) -> Any:
    import optuna

    return optuna.pruners.NopPruner()


def _median_pruner(algorithm: AlgorithmConfig, max_epochs: int) -> Any:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=algorithm.n_startup_trials,
                                       n_warmup_steps=max(0, algorithm.grace_period - 1))


def _asha_pruner(algorithm: AlgorithmConfig, max_epochs: int) -> Any:
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(min_resource=algorithm.grace_period,
                                                  reduction_factor=algorithm.reduction_factor)


def _hyperband_pruner(algorithm: AlgorithmConfig, max_epochs: int) -> Any:
    import optuna

    return optuna.pruners.HyperbandPruner(min_resource=algorithm.grace_period, max_resource=max_epochs,
                                          reduction_factor=algorithm.reduction_factor)


def _hyperband_es_pruner(algorithm: AlgorithmConfig, max_epochs: int) -> Any:
    from hpo.backends.curve_stop import HyperbandESPruner

    return HyperbandESPruner(curve_rule(algorithm, max_epochs), min_resource=algorithm.grace_period,
                             max_resource=max_epochs, reduction_factor=algorithm.reduction_factor)


def curve_rule(algorithm: AlgorithmConfig, max_epochs: int) -> Any:
    """hyperband_es's learning-curve rule from the sweep config's knobs (both backends build it here)."""
    from hpo.backends.curve_stop import CurveRule

    return CurveRule(max_epochs=max_epochs, min_points=algorithm.min_early_stop_epochs,
                     threshold=algorithm.early_stop_threshold, margin=algorithm.early_stop_margin)


# ---------------------------------------------------------------------------------- Ray schedulers

_EPOCHS = {"time_attr": "epochs_trained"}  # a count; a result's `epoch` is TAO's 0-based index


def _fifo(algorithm: AlgorithmConfig, max_epochs: int, space: SearchSpace, seed: int) -> Any:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


def _median_stopping(algorithm: AlgorithmConfig, max_epochs: int, space: SearchSpace, seed: int) -> Any:
    from ray.tune.schedulers import MedianStoppingRule

    return MedianStoppingRule(grace_period=algorithm.grace_period,
                              min_samples_required=max(1, algorithm.n_startup_trials), **_EPOCHS)


def _asha(algorithm: AlgorithmConfig, max_epochs: int, space: SearchSpace, seed: int) -> Any:
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(max_t=max_epochs, grace_period=algorithm.grace_period,
                         reduction_factor=algorithm.reduction_factor, brackets=algorithm.brackets, **_EPOCHS)


def _hyperband(algorithm: AlgorithmConfig, max_epochs: int, space: SearchSpace, seed: int) -> Any:
    from ray.tune.schedulers import HyperBandScheduler

    return HyperBandScheduler(max_t=max_epochs, reduction_factor=algorithm.reduction_factor, **_EPOCHS)


def _hyperband_es(algorithm: AlgorithmConfig, max_epochs: int, space: SearchSpace, seed: int) -> Any:
    from hpo.backends.curve_stop import hyperband_es_scheduler

    return hyperband_es_scheduler(curve_rule(algorithm, max_epochs), max_t=max_epochs,
                                  reduction_factor=algorithm.reduction_factor)


def _hyperband_for_bohb(algorithm: AlgorithmConfig, max_epochs: int, space: SearchSpace, seed: int) -> Any:
    from ray.tune.schedulers import HyperBandForBOHB

    return HyperBandForBOHB(max_t=max_epochs, reduction_factor=algorithm.reduction_factor, **_EPOCHS)


def _pbt(algorithm: AlgorithmConfig, max_epochs: int, space: SearchSpace, seed: int) -> Any:
    from ray.tune.schedulers import PopulationBasedTraining

    from hpo.backends.ray_backend import PbtExplorer

    return PopulationBasedTraining(
        perturbation_interval=algorithm.perturbation_interval, quantile_fraction=algorithm.quantile_fraction,
        custom_explore_fn=PbtExplorer(space, seed, algorithm.perturbation_factor, algorithm.resample_probability),
        log_config=False, **_EPOCHS,
    )


# -------------------------------------------------------------------------------------- Ray searches


def _space_searcher(ctx: SweepContext, planned: Sequence[Mapping[str, Any]], mode: str) -> tuple[Any, dict[str, Any]]:
    """The Optuna sampler of `SAMPLERS`, proposing through an Optuna study in the workspace (ray_searcher.py)."""
    from hpo.backends.optuna_factory import storage_url
    from hpo.backends.ray_searcher import SpaceSearcher

    return SpaceSearcher(
        space=ctx.space, algorithm=ctx.config.algorithm, seed=ctx.config.seed,
        storage_url=storage_url(None, ctx.workspace.state_dir), study_name=ctx.config.name,
        metric=ctx.metric, mode=mode, max_epochs=ctx.max_epochs, planned=planned,
        keeper_key=str(ctx.workspace.root.resolve()),
    ), {}


def _bohb_search(ctx: SweepContext, planned: Sequence[Mapping[str, Any]], mode: str) -> tuple[Any, dict[str, Any]]:
    from hpo.backends.ray_bohb import SpaceBOHB

    return SpaceBOHB(space=ctx.space, epoch_budget=ctx.max_epochs, metric=ctx.metric, mode=mode,
                     seed=ctx.config.seed, points_to_evaluate=[dict(p) for p in planned] or None), {}


def _population(ctx: SweepContext, planned: Sequence[Mapping[str, Any]], mode: str) -> tuple[Any, dict[str, Any]]:
    """PBT refuses searchers: Ray's variant generator draws whole configurations from the space (the plan's
    first batch first, then the same stream after it)."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from hpo.backends.ray_backend import SpaceSampler
    from hpo.backends.ray_trainable import PBT_PARAMS_KEY, pack_params

    seed = ctx.config.seed
    points = [{PBT_PARAMS_KEY: pack_params(ctx.space.decode(dict(p), epoch_budget=ctx.max_epochs))}
              for p in planned] or None
    sampler = SpaceSampler(ctx.space, seed, ctx.max_epochs, skip=len(planned))
    return (BasicVariantGenerator(points_to_evaluate=points, random_state=seed),
            {PBT_PARAMS_KEY: tune.sample_from(sampler)})


# ------------------------------------------------------------------------------------------- tables

SAMPLERS: dict[str, Sampler] = {entry.name: entry for entry in (
    Sampler("random", _random, _space_searcher),
    Sampler("tpe", _tpe, _space_searcher),
    Sampler("bayesian", _bayesian, _space_searcher),
    Sampler("cmaes", _cmaes, _space_searcher),
    Sampler("grid", _grid, _space_searcher, points=_grid_points),
    Sampler("bfbo", _bfbo, _space_searcher),
    Sampler("dehb", _dehb, _space_searcher),
    Sampler("mfbo", _mfbo, _space_searcher),
    Sampler("bohb", None, _bohb_search),
)}

SCHEDULERS: dict[str, Scheduler] = {entry.name: entry for entry in (
    Scheduler("none", _no_pruner, _fifo),
    Scheduler("median", _median_pruner, _median_stopping),
    Scheduler("asha", _asha_pruner, _asha),
    Scheduler("hyperband", _hyperband_pruner, _hyperband, synchronous=True),
    Scheduler("hyperband_es", _hyperband_es_pruner, _hyperband_es, synchronous=True),
    Scheduler("bohb", None, _hyperband_for_bohb, synchronous=True),
    Scheduler("pbt", None, _pbt, ray_search=_population),
)}

# ------------------------------------------------------------------------------------------ lookups


def _unavailable_sampler(name: str, backend: str) -> SweepConfigError:
    return SweepConfigError(f"sampler {name!r} is not available on backend {backend}.")


def _unavailable_scheduler(name: str, backend: str) -> SweepConfigError:
    hint = " (use backend ray)" if backend == OPTUNA and name in SCHEDULERS else ""
    return SweepConfigError(f"early stopping {name!r} is not available on backend {backend}{hint}.")


def optuna_sampler(algorithm: AlgorithmConfig, space: SearchSpace, seed: int, *,
                   epoch_budget: int | None = None) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of a resolved algorithm (the Optuna backend's study and Ray's `SpaceSearcher`)."""
    entry = SAMPLERS.get(algorithm.sampler)
    if entry is None or entry.optuna is None:
        raise _unavailable_sampler(algorithm.sampler, OPTUNA)
    return entry.optuna(algorithm, space, seed, epoch_budget)


def optuna_pruner(algorithm: AlgorithmConfig, max_epochs: int) -> optuna.pruners.BasePruner:
    """The Optuna pruner of a resolved algorithm (step = epochs trained)."""
    entry = SCHEDULERS.get(algorithm.scheduler)
    if entry is None or entry.optuna is None:
        raise _unavailable_scheduler(algorithm.scheduler, OPTUNA)
    return entry.optuna(algorithm, max_epochs)


def ray_scheduler(algorithm: AlgorithmConfig, *, max_epochs: int, space: SearchSpace, seed: int) -> Any:
    """The Ray Tune scheduler of a resolved algorithm; metric and mode come later (TuneConfig, or
    `set_search_properties`)."""
    entry = SCHEDULERS.get(algorithm.scheduler)
    if entry is None or entry.ray is None:
        raise _unavailable_scheduler(algorithm.scheduler, RAY)
    return entry.ray(algorithm, max_epochs, space, seed)


def ray_search(ctx: SweepContext, planned: Sequence[Mapping[str, Any]], mode: str) -> tuple[Any, dict[str, Any]]:
    """(search_alg or None, param_space) for Ray: the scheduler's own proposals (PBT), else the sampler's."""
    algorithm = ctx.config.algorithm
    scheduler = SCHEDULERS.get(algorithm.scheduler)
    if scheduler is not None and scheduler.ray_search is not None:
        return scheduler.ray_search(ctx, planned, mode)
    sampler = SAMPLERS.get(algorithm.sampler)
    if sampler is None or sampler.ray is None:
        raise _unavailable_sampler(algorithm.sampler, RAY)
    return sampler.ray(ctx, planned, mode)


def synchronous(algorithm: AlgorithmConfig) -> bool:
    """Whether Ray runs the algorithm's scheduler in synchronous brackets (hyperband, hyperband_es, bohb)."""
    entry = SCHEDULERS.get(algorithm.scheduler)
    return entry is not None and entry.synchronous


def trial_budget(algorithm: AlgorithmConfig, space: SearchSpace, epoch_budget: int | None) -> int:
    """The trials a sweep runs: `max_trials`, or fewer when the sampler has fewer points (a grid)."""
    entry = SAMPLERS.get(algorithm.sampler)
    if entry is None or entry.points is None:
        return algorithm.max_trials
    return min(algorithm.max_trials, entry.points(algorithm, space, epoch_budget))
