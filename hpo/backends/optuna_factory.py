"""Optuna storage and the grid over a search space; the sampler and pruner of an algorithm are built by the
builders of `hpo.backends.algorithms`, through `make_sampler` and `make_pruner` here."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy

from hpo.backends import algorithms
from hpo.backends.grid_sampler import GridOrder
from hpo.space import SearchSpace, static
from hpo.storage.sqlite_files import create_complete, sqlite_file
from hpo.sweep.config import AlgorithmConfig
from skillkit.errors import SweepConfigError
from skillkit.redaction import redact

# Optuna logs an INFO line per study it creates and per trial it finishes ("A new study created in RDB ...",
# "Trial 3 finished with value ..."): the live table says all of that, and the probe's scratch studies would
# show up as "warm" and "probe". Set here, where every Optuna path of the engine (the Optuna backend, Ray's
# Optuna searcher, the probe) builds its storage or sampler; Optuna's warnings still show.
optuna.logging.set_verbosity(optuna.logging.WARNING)


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
    study_file = sqlite_file(url)
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    if study_file is not None:
        try:
            create_complete(study_file, _build_optuna_schema)
        except Exception as error:  # noqa: BLE001 - an unwritable folder or a bad path is the user's URL
            raise SweepConfigError(f"cannot create the Optuna storage '{url}': {type(error).__name__}: {error}") from None
    heartbeat: dict[str, Any] = {}
    if heartbeat_interval_s is not None:
        heartbeat = {"heartbeat_interval": heartbeat_interval_s, "grace_period": grace_period_s,
                     "heartbeat_stale_trial_callback": stale_trial_callback}
    try:
        storage = optuna.storages.RDBStorage(url_for_driver, engine_kwargs=engine_kwargs, **heartbeat)
    except Exception as error:  # noqa: BLE001 - any connection/driver error is the user's URL
        raise SweepConfigError(redact(f"cannot open the Optuna storage '{url}': {type(error).__name__}: {error}")) from None
    if study_file is not None:
        _restore_missing_indexes(storage, study_file)
    return storage


def _build_optuna_schema(url: str) -> None:
    """Optuna's whole schema (tables, indexes, version rows) in a new SQLite file, every connection closed
    afterwards; `create_complete` moves the file into place."""
    storage = optuna.storages.RDBStorage(url)
    storage.remove_session()
    storage.engine.dispose()


def _restore_missing_indexes(storage: optuna.storages.RDBStorage, study_file: Path) -> None:
    """Indexes a study file lacks because an earlier build of the engine was killed while Optuna created it
    (before `create_complete` existed): above all the unique index on the study name, without which every
    resume adds a second study of the same name. Recreated when the rows allow; otherwise a clear error."""
    from optuna.storages._rdb import models  # Optuna's table definitions: the indexes its schema should hold

    inspector = sqlalchemy.inspect(storage.engine)
    for table in models.BaseModel.metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name in present:
                continue
            try:
                index.create(storage.engine)
            except sqlalchemy.exc.IntegrityError:
                raise SweepConfigError(
                    f"the Optuna study file {study_file} lacks its index '{index.name}' and holds rows that break "
                    f"it (e.g. two studies of one name): it was left incomplete by a driver killed while "
                    f"creating it. Move the file aside and start the sweep again (`hpo run`), or delete the "
                    f"duplicate rows of table '{table.name}' with the sqlite3 tool."
                ) from None


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
    """The Optuna sampler of a resolved algorithm (`hpo.backends.algorithms.SAMPLERS`)."""
    return algorithms.optuna_sampler(algorithm, space, seed, epoch_budget=epoch_budget)


def make_pruner(algorithm: AlgorithmConfig, max_epochs: int) -> optuna.pruners.BasePruner:
    """The Optuna pruner of a resolved algorithm (`hpo.backends.algorithms.SCHEDULERS`)."""
    return algorithms.optuna_pruner(algorithm, max_epochs)


def first_grid_points(grid: dict[str, list[Any]], seed: int, n: int) -> list[dict[str, Any]]:
    """The static points trials 0..n-1 of a grid sweep visit (what `LazyGridSampler` gives them)."""
    return GridOrder(grid, seed).first_points(n)
