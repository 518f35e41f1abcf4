"""Optuna samplers, pruners and storage for a sweep config (one tested place for the mapping).

sampler:   random → RandomSampler; tpe → TPESampler (multivariate; grouped for conditional spaces;
           constant liar so parallel trials spread out); bayesian → GPSampler; cmaes → CmaEsSampler;
           grid → GridSampler over `grid_points` values per numeric parameter (every option of a choice).
           All but grid are wrapped by the space's `optuna_sampler`, so schema option weights shape the
           startup trials.
scheduler: none → NopPruner; median → MedianPruner (no pruning before grace_period epochs);
           asha → SuccessiveHalvingPruner (asynchronous successive halving, min_resource = grace_period);
           hyperband → HyperbandPruner (min grace_period, max the epoch budget).
Pruners see one intermediate value per validation, at step = epochs trained (the resource they count).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from skillkit.errors import SearchSpaceError, SweepConfigError
from hpo.sweep.config import AlgorithmConfig
from hpo.space import SearchSpace


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


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage; SQLite gets a generous lock timeout because several trial threads write to it."""
    engine_kwargs: dict[str, Any] = {}
    url_for_driver = _with_driver(url)
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        return optuna.storages.RDBStorage(url_for_driver, engine_kwargs=engine_kwargs)
    except Exception as error:  # noqa: BLE001 - any connection/driver error is the user's URL
        raise SweepConfigError(f"cannot open the Optuna storage '{_redact(url)}': {type(error).__name__}: {error}") from None


def _redact(url: str) -> str:
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        if ":" in credentials:
            return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return url


def grid_values(space: SearchSpace, points: int) -> dict[str, list[Any]]:
    """Grid points: every option of a categorical, `points` values spread over a numeric range (log-spaced
    on a log scale, snapped to the step)."""
    try:
        distributions = space.optuna_distributions()
    except SearchSpaceError as error:
        raise SweepConfigError(f"algorithm 'grid' needs an unconditional search space: {error}") from None
    grid: dict[str, list[Any]] = {}
    for name, dist in distributions.items():
        if isinstance(dist, CategoricalDistribution):
            grid[name] = list(dist.choices)
        elif isinstance(dist, IntDistribution):
            raw = np.geomspace(dist.low, dist.high, points) if dist.log else np.linspace(dist.low, dist.high, points)
            step = dist.step or 1
            grid[name] = sorted({int(dist.low + round((v - dist.low) / step) * step) for v in raw})
        elif isinstance(dist, FloatDistribution):
            raw = np.geomspace(dist.low, dist.high, points) if dist.log else np.linspace(dist.low, dist.high, points)
            if dist.step:
                raw = [dist.low + round((v - dist.low) / dist.step) * dist.step for v in raw]
            grid[name] = sorted({float(v) for v in raw})
        else:
            raise SweepConfigError(f"algorithm 'grid' cannot enumerate parameter {name!r} ({dist}).")
    return grid


def grid_size(grid: dict[str, list[Any]]) -> int:
    return math.prod(len(values) for values in grid.values())


def make_sampler(algorithm: AlgorithmConfig, space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    name = algorithm.sampler
    startup = algorithm.n_startup_trials
    if name == "grid":
        return optuna.samplers.GridSampler(grid_values(space, algorithm.grid_points), seed=seed)
    if name == "random":
        base: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=seed)
    elif name == "tpe":
        base = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup, multivariate=True, group=space.is_conditional, constant_liar=True,
        )
    elif name == "bayesian":
        base = optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    elif name == "cmaes":
        base = optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    else:
        raise SweepConfigError(f"sampler {name!r} is not available on backend optuna.")
    return space.optuna_sampler(base, seed=seed, n_startup_trials=startup if name in ("tpe", "bayesian") else None)


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
    raise SweepConfigError(f"early stopping {name!r} is not available on backend optuna (use backend ray).")


def combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = sorted(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]
