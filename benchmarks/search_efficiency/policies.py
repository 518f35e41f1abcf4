"""Search policies the simulator drives: our engine's algorithms, built by the engine's own code.

`OptunaPolicy` is the decision logic of `hpo.backends.optuna_backend.OptunaBackend`, step for step, with
the study's sampler and pruner made by `hpo.backends.optuna_factory.make_sampler/make_pruner` from the
`AlgorithmConfig` that `hpo.sweep.config.sweep_config_from_dict` resolves out of a sweep config — the code
`hpo run` uses. Per trial: `study.ask()`, the compiled space's define-by-run `suggest` (epoch budget R),
`trial.report(value, epoch)` after every epoch, `should_prune()` before the last epoch (a pruned trial stops
there), and at the end `tell(best value)` for a trial that trained all R epochs or `tell(PRUNED)` — never a
partial score as a full-budget result. What the simulator leaves out is only the I/O (subprocess, status.json
follower, SQLite): the study lives in Optuna's in-memory storage, which gives the same sampler and pruner
decisions (the Hyperband pruner's bracket hash uses the study name, kept equal to the sweep name).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from benchmarks.search_efficiency.simulator import COMPLETED, CONTINUE, STOP, Run
from benchmarks.search_efficiency.suites import Suite

optuna.logging.set_verbosity(optuna.logging.WARNING)
logging.getLogger("optuna").setLevel(logging.WARNING)


def sweep_config_for(algorithm: Mapping[str, Any], *, suite: Suite, seed: int, backend: str = "optuna",
                     name: str = "benchmark", max_trials: int = 100000) -> Any:
    """The engine's own `SweepConfig` for a sweep of `suite` with `algorithm` (a sweep config's `algorithm:`
    mapping, e.g. {"name": "tpe", "pruner": "hyperband"}) — validated by the sweep schema and rules."""
    from hpo.sweep.config import sweep_config_from_dict

    data = {
        "name": name, "algorithm": {"max_trials": max_trials, "max_epochs": suite.max_epochs, **algorithm},
        "backend": backend, "seed": seed, "metric": suite.metric,
        "direction": "minimize" if suite.direction == "minimize" else "maximize",
        "baseline": {"enabled": False}, "tracking": {"enabled": False}, "promotion": {"enabled": False},
    }
    return sweep_config_from_dict(data, base_dir=Path.cwd(), source=f"<benchmark {suite.name}>")


def compiled_space(suite: Suite) -> Any:
    """The suite's search space compiled by the engine's compiler from its TAO-format schema."""
    from hpo.space import compile_space

    return compile_space(suite.schema())


class OptunaPolicy:
    """See module docstring."""

    def __init__(self, config: Any, suite: Suite, *, space: Any = None, sampler: Any = None, pruner: Any = None) -> None:
        """`sampler`/`pruner` replace the engine-built ones (Optuna's library defaults, for the peers)."""
        from hpo.backends.optuna_factory import make_pruner, make_sampler

        self.config = config
        self.suite = suite
        self.space = space if space is not None else compiled_space(suite)
        self.max_epochs = suite.max_epochs
        algorithm = config.algorithm
        self.direction = config.direction or ("minimize" if suite.direction == "minimize" else "maximize")
        self.study = optuna.create_study(
            study_name=config.name, storage=optuna.storages.InMemoryStorage(), direction=self.direction,
            sampler=sampler if sampler is not None else make_sampler(algorithm, self.space, config.seed,
                                                                     epoch_budget=self.max_epochs),
            pruner=pruner if pruner is not None else make_pruner(algorithm, self.max_epochs),
        )
        self.max_trials = algorithm.max_trials
        if algorithm.sampler == "grid":  # as OptunaBackend: a grid sweep ends when its grid is done
            from hpo.backends.optuna_factory import grid_size, grid_values

            self.max_trials = min(self.max_trials, grid_size(grid_values(
                self.space, algorithm.grid_points, algorithm.grid_values, epoch_budget=self.max_epochs)))
        self.trials: dict[int, optuna.trial.Trial] = {}
        self.values: dict[int, dict[int, float]] = {}
        self.pruned: set[int] = set()

    def next_run(self) -> Run | None:
        if len(self.study.get_trials(deepcopy=False)) >= self.max_trials:
            return None
        trial = self.study.ask()
        params = self.space.suggest(trial, epoch_budget=self.max_epochs)
        self.trials[trial.number] = trial
        self.values[trial.number] = {}
        return Run(key=trial.number, config=params, start_epoch=0, stop_epoch=self.max_epochs)

    def on_epoch(self, key: int, epoch: int, value: float) -> str:
        trial = self.trials[key]
        self.values[key][epoch] = value
        trial.report(value, epoch)
        if epoch < self.max_epochs and trial.should_prune():
            self.pruned.add(key)
            return STOP
        return CONTINUE

    def on_run_end(self, key: int, epoch: int, reason: str) -> None:
        trial = self.trials.pop(key)
        values = self.values.pop(key)
        if reason == COMPLETED and epoch >= self.max_epochs:
            best = min(values.values()) if self.direction == "minimize" else max(values.values())
            self.study.tell(trial, best)
        else:
            self.study.tell(trial, state=TrialState.PRUNED)

