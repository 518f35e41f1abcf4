"""Optuna samplers, pruners and storage for a sweep config (one tested place for the mapping).

sampler:   random → RandomSampler; tpe → TPESampler (multivariate; constant liar so parallel trials spread
           out); bayesian → GPSampler; cmaes → CmaEsSampler; grid → `LazyGridSampler` over the static space
           (`grid_points` levels per numeric dimension, every option of a choice, or explicit `grid_values`);
           dehb → `DifferentialEvolutionSampler` (de_sampler.py: DE/rand/1/bin over the best results of one
           budget); bfbo → `BatchGPSampler` (bfbo_sampler.py: GP expected improvement with local
           penalisation around the points of running trials); mfbo → `SameBudgetTPESampler` (multivariate TPE
           on the results of one budget only, mfbo_sampler.py; `n_startup_trials` = the fewest same-budget
           results it fits on).
           Every sampler sees the space's static form (`hpo.space.static`: one fixed distribution per
           primitive draw, relational children as fractions of their feasible range), so GP, CMA-ES and
           multivariate TPE model all parameters jointly; GP's and CMA-ES's independent-sampling warning stays
           ON, so a parameter that ever escapes the joint model is reported, not hidden (TPE's was deprecated
           by Optuna 4.9; tests/engine/test_search_contract.py checks all three directly). All but grid are wrapped by
           the space's `optuna_sampler`, so schema option weights shape the startup trials, and then by
           `TrialSeededSampler`, so a trial's draw depends on the seed and its number, not on when the
           driver last started (a resumed sweep samples what the uninterrupted one would have).
scheduler: none → NopPruner; median → MedianPruner (no pruning before grace_period epochs);
           asha → SuccessiveHalvingPruner (asynchronous successive halving, min_resource = grace_period);
           hyperband → HyperbandPruner (min grace_period, max the epoch budget); hyperband_es → `HyperbandESPruner`
           (curve_stop.py: the same Hyperband, and a trial whose extrapolated learning curve cannot beat the
           incumbent is stopped too).
Pruners see one intermediate value per validation, at step = epochs trained (the resource they count).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import optuna

from hpo.backends.grid_sampler import GridOrder, LazyGridSampler
from hpo.backends.trial_seeding import TrialSeededSampler
from skillkit.errors import SweepConfigError
from skillkit.redaction import redact
from hpo.sweep.config import AlgorithmConfig
from hpo.space import SearchSpace, static


def storage_url(storage: str | None, state_dir: Path) -> str:
    return storage or f"sqlite:///{state_dir / 'optuna.db'}"


def _with_driver(url: str) -> str:
    """SQLAlchemy 2.1 reads plain postgresql:// as psycopg 3; use psycopg2 when only that is installed."""
    if url.startswith("postgresql://"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def make_storage(url: str, *, heartbeat_interval_s: int | None = None, grace_period_s: int | None = None,
                 stale_trial_callback: Any = None) -> optuna.storages.RDBStorage:
    """An RDB storage; SQLite gets a generous lock timeout because several trial threads write to it. With
    `heartbeat_interval_s`, trials carry Optuna's heartbeat and `stale_trial_callback` runs for each trial
    whose worker fell silent for `grace_period_s` (hpo.backends.optuna_workers)."""
    engine_kwargs: dict[str, Any] = {}
    url_for_driver = _with_driver(url)
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    heartbeat: dict[str, Any] = {}
    if heartbeat_interval_s is not None:
        heartbeat = {"heartbeat_interval": heartbeat_interval_s, "grace_period": grace_period_s,
                     "heartbeat_stale_trial_callback": stale_trial_callback}
    try:
        return optuna.storages.RDBStorage(url_for_driver, engine_kwargs=engine_kwargs, **heartbeat)
    except Exception as error:  # noqa: BLE001 - any connection/driver error is the user's URL
        raise SweepConfigError(redact(f"cannot open the Optuna storage '{url}': {type(error).__name__}: {error}")) from None


def grid_values(space: SearchSpace, points: int, explicit: Mapping[str, Sequence[Any]] | None = None,
                *, epoch_budget: int | None = None) -> dict[str, list[Any]]:
    """The grid over the static space: primitive draw name → its levels (`static.grid_levels`), with the
    levels of a plain scalar parameter replaced by its `explicit` points (checked against its range)."""
    explicit = dict(explicit or {})
    grid: dict[str, list[Any]] = {}
    for dimension in space.static_dimensions(epoch_budget=epoch_budget):
        grid[dimension.name] = static.grid_levels(dimension, points)
    for name, values in explicit.items():
        if name not in space:
            raise SweepConfigError(f"'algorithm.grid_values.{name}': no such searched parameter; searched: "
                                   f"{', '.join(space.names)}.")
        param = space[name]
        if param.is_conditional or name not in grid:
            raise SweepConfigError(
                f"'algorithm.grid_values.{name}': explicit points are for plain scalar parameters; {name} "
                + ("depends on " + str(param.parent) + " and takes grid_points levels of its feasible range."
                   if param.parent else "is a list, assembled from several draws; it takes grid_points levels.")
            )
        bad = [v for v in values if space.value_problem(name, v) is not None]
        if bad:
            raise SweepConfigError(f"'algorithm.grid_values.{name}' = {list(values)}: {bad} outside what the "
                                   f"parameter allows ({param.range_text()}).")
        grid[name] = list(values)
    return grid


def grid_size(grid: dict[str, list[Any]]) -> int:
    return math.prod(len(values) for values in grid.values())


def make_sampler(algorithm: AlgorithmConfig, space: SearchSpace, seed: int, *,
                 epoch_budget: int | None = None) -> optuna.samplers.BaseSampler:
    name = algorithm.sampler
    startup = algorithm.n_startup_trials
    if name == "grid":
        return LazyGridSampler(grid_values(space, algorithm.grid_points, algorithm.grid_values,
                                           epoch_budget=epoch_budget), seed=seed)
    if name == "random":
        base: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=seed)
    elif name == "tpe":
        base = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup, multivariate=True, constant_liar=True,
        )
    elif name == "bayesian":
        base = optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=True)
    elif name == "cmaes":
        base = optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=True)
    elif name == "dehb":
        from hpo.backends.de_sampler import MIN_POPULATION, DifferentialEvolutionSampler

        base = DifferentialEvolutionSampler(space, seed=seed, epoch_budget=epoch_budget,
                                            mutation_factor=algorithm.mutation_factor,
                                            crossover_prob=algorithm.crossover_prob)
        return TrialSeededSampler(space.optuna_sampler(base, seed=seed, n_startup_trials=MIN_POPULATION), seed)
    elif name == "bfbo":
        from hpo.backends.bfbo_sampler import BatchGPSampler

        base = BatchGPSampler(space, seed=seed, epoch_budget=epoch_budget, n_startup_trials=startup)
    elif name == "mfbo":
        from hpo.backends.mfbo_sampler import SameBudgetTPESampler, default_values

        base = SameBudgetTPESampler(seed=seed, min_points=max(2, startup), first=default_values(space))
    else:
        raise SweepConfigError(f"sampler {name!r} is not available on backend optuna.")
    weighted = space.optuna_sampler(base, seed=seed,
                                    n_startup_trials=startup if name in ("tpe", "bayesian", "bfbo", "mfbo") else None)
    # Each trial's draws depend on (seed, trial number, history) only, so a resumed sweep asks for what the
    # uninterrupted one would have (hpo.backends.trial_seeding).
    return TrialSeededSampler(weighted, seed)


def make_pruner(algorithm: AlgorithmConfig, max_epochs: int) -> optuna.pruners.BasePruner:
    name = algorithm.scheduler
    grace = algorithm.grace_period
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=algorithm.n_startup_trials, n_warmup_steps=max(0, grace - 1))
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=grace, reduction_factor=algorithm.reduction_factor)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=grace, max_resource=max_epochs,
                                              reduction_factor=algorithm.reduction_factor)
    if name == "hyperband_es":
        from hpo.backends.curve_stop import HyperbandESPruner

        return HyperbandESPruner(curve_rule(algorithm, max_epochs), min_resource=grace, max_resource=max_epochs,
                                 reduction_factor=algorithm.reduction_factor)
    raise SweepConfigError(f"early stopping {name!r} is not available on backend optuna (use backend ray).")


def curve_rule(algorithm: AlgorithmConfig, max_epochs: int) -> Any:
    """hyperband_es's learning-curve rule from the sweep config's knobs (both backends build it here)."""
    from hpo.backends.curve_stop import CurveRule

    return CurveRule(max_epochs=max_epochs, min_points=algorithm.min_early_stop_epochs,
                     threshold=algorithm.early_stop_threshold, margin=algorithm.early_stop_margin)


def first_grid_points(grid: dict[str, list[Any]], seed: int, n: int) -> list[dict[str, Any]]:
    """The static points trials 0..n-1 of a grid sweep visit (what `LazyGridSampler` gives them)."""
    return GridOrder(grid, seed).first_points(n)
