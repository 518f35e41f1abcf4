"""Ray Tune's own schedulers and BOHB searcher, driven in-process on the simulator: `ray:asha`,
`ray:hyperband`, `ray:bohb` — as a bare Ray Tune user configures them, no Ray cluster started.

What a bare user writes, and what runs here:

    param_space = {"x0": tune.uniform(0, 1), "lr": tune.loguniform(1e-4, 1e-1), ...}   # `param_space(suite)`
    ray:asha       ASHAScheduler(max_t=R)            + BasicVariantGenerator(random_state=seed) (random search)
    ray:hyperband  HyperBandScheduler(max_t=R)       + BasicVariantGenerator(random_state=seed)
    ray:bohb       HyperBandForBOHB(max_t=R)         + TuneBOHB(seed=seed)
    tune.TuneConfig(metric=..., mode=..., num_samples=-1)   # the simulator's epoch budget ends the sweep

Every other argument is the class's default (ASHA: grace period 1, reduction factor 4, one bracket;
HyperBand and HyperBandForBOHB: reduction factor 3; `stop_last_trials=True`; `time_attr` =
`training_iteration`, which is the epoch count: a resumed trial's iteration counter is restored from its
checkpoint). Random search is Ray's own variant generation (`generate_variants` with the generator's
random state, one call per trial, as `BasicVariantGenerator` does); TuneBOHB converts the same
`param_space` to its ConfigSpace itself (`set_search_properties`, as `Tuner` calls it) and proposes with
hpbandster's BOHB at its defaults.

Every CONTINUE / PAUSE / STOP comes from Ray's scheduler code, fed with the simulated results. What Ray's
`TuneController` does around the schedulers is replaced by `SimController`, kept to what they call:

- `SimTrial` stands in for `ray.tune.experiment.Trial`: the schedulers read `trial_id`, `status`
  (Ray's own status strings), `is_saving` and `last_result`, and key their dicts by the trial object.
- Trials are created ahead of running, as the controller does: up to `max_pending` PENDING trials
  (`_get_max_pending_trials`: 200 for `BasicVariantGenerator` on a cluster of under 182 CPUs, 1 for any other
  searcher without a `ConcurrencyLimiter`); each new trial goes through `scheduler.on_trial_add`, which is
  where synchronous HyperBand places it in a bracket.
- When a worker is free, the trial `scheduler.choose_trial_to_run` returns starts (a PAUSED trial resumes
  from its checkpoint: it continues at the epoch it paused at, no epoch is trained twice); if the scheduler
  chooses none, the oldest PENDING trial starts (the controller starts pending trials in FIFO order). Ray
  starts trial actors asynchronously; here a free worker takes its next trial at once, deterministically.
- Each epoch's result `{training_iteration: epoch, <metric>: value}` goes to `scheduler.on_trial_result`,
  then, unless the decision is STOP, to the searcher's `on_trial_result` (the order `_process_trial_result`
  uses: HyperBandForBOHB writes the bracket's budget into the result there for TuneBOHB to read). STOP runs
  the controller's `stop_trial` (scheduler's `on_trial_complete`, searcher's `on_trial_complete`); PAUSE
  parks the trial. A trial that reports its R-th epoch and is told to continue has finished its trainable:
  Ray then stops it without asking the scheduler (the trainable's final "done" result), and so does this.
- `stop_trial` of a PENDING or PAUSED trial (HyperBand stops a bracket's losers and, at the end of a bracket,
  its parked trials) calls the scheduler's `on_trial_remove` and the searcher's `on_trial_complete`, as Ray's.

Seeding: ASHA draws its bracket and hpbandster's BOHB samples with NumPy's global generator (and SciPy's
truncated normal, which uses it); the policy seeds it with the sweep's seed when it is built, so a sweep is
a pure function of (algorithm, suite, seed, workers), like every other policy.

Not simulated: Ray's PBT. It exploits by copying a better trial's checkpoint and continues with perturbed
hyperparameters; a curve table (and the Hartmann generators) can only replay a curve whose configuration is
fixed from epoch 1, so a PBT trial's curve after an exploit does not exist in any suite.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from benchmarks.search_efficiency.simulator import CONTINUE, PAUSE, PAUSED, STOP, Run
from benchmarks.search_efficiency.suites import Suite

RAY_ALGORITHMS = ("asha", "hyperband", "bohb")
TIME_ATTR = "training_iteration"
# `_get_max_pending_trials` in ray/tune/execution/tune_controller.py: max(200, cluster CPUs * 1.1) for
# BasicVariantGenerator, 1 for another searcher not wrapped in a ConcurrencyLimiter.
MAX_PENDING_RANDOM = 200
MAX_PENDING_SEARCHER = 1

for _name in ("ray", "hpbandster"):
    logging.getLogger(_name).setLevel(logging.ERROR)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """statsmodels warns on every KDE hpbandster fits that its default generator (NumPy's global one, seeded
    here) will change in a later release; the sweep's output stays readable without it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def param_space(suite: Suite) -> dict[str, Any]:
    """The suite's parameters as a Ray Tune `param_space` (Ray's integer domains exclude their upper bound;
    the suite's are inclusive)."""
    from ray import tune

    space: dict[str, Any] = {}
    for param in suite.parameters:
        if param.type == "categorical":
            space[param.name] = tune.choice(list(param.enum))
            continue
        low, high = param.minimum, param.maximum
        log = param.scale == "log"
        if param.type == "int":
            space[param.name] = (tune.lograndint if log else tune.randint)(int(low), int(high) + 1)  # type: ignore[arg-type]
        else:
            space[param.name] = (tune.loguniform if log else tune.uniform)(float(low), float(high))  # type: ignore[arg-type]
    return space


class SimTrial:
    """Stand-in for `ray.tune.experiment.Trial`: the attributes Ray's schedulers read (see module docstring).
    Hashed by identity, as Ray's trials are."""

    is_saving = False  # saves are instantaneous here: a trial is never caught mid-checkpoint

    def __init__(self, trial_id: str, config: Mapping[str, Any]) -> None:
        from ray.tune.experiment import Trial

        self.trial_id = trial_id
        self.config = {k: v.item() if isinstance(v, np.generic) else v for k, v in config.items()}
        self.status: str = Trial.PENDING
        self.last_result: dict[str, Any] = {}
        self.epochs = 0  # epochs trained so far: where a resumed run continues from its checkpoint

    def __repr__(self) -> str:
        return f"SimTrial({self.trial_id}, {self.status}, {self.epochs} epochs)"


class _SearchAlg:
    """Stand-in for `SearchGenerator`: HyperBandForBOHB reaches the searcher as `search_alg.searcher`."""

    def __init__(self, searcher: Any) -> None:
        self.searcher = searcher


class SimController:
    """Stand-in for `TuneController` as the schedulers call it: `get_trials`, `stop_trial`, `search_alg`."""

    def __init__(self, scheduler: Any, searcher: Any) -> None:
        self.scheduler = scheduler
        self.search_alg = _SearchAlg(searcher)
        self.trials: list[SimTrial] = []

    def get_trials(self) -> list[SimTrial]:
        return self.trials

    def stop_trial(self, trial: SimTrial) -> None:
        """Ray's `TuneController.stop_trial`, less its callbacks and actor bookkeeping."""
        from ray.tune.experiment import Trial

        if trial.status in (Trial.ERROR, Trial.TERMINATED):
            return
        searcher = self.search_alg.searcher
        if trial.status in (Trial.PENDING, Trial.PAUSED):
            self.scheduler.on_trial_remove(self, trial)
            if searcher is not None:
                searcher.on_trial_complete(trial.trial_id)
        else:
            self.scheduler.on_trial_complete(self, trial, dict(trial.last_result))
            if searcher is not None:
                searcher.on_trial_complete(trial.trial_id, result=dict(trial.last_result))
        trial.status = Trial.TERMINATED


class RayTunePolicy:
    """A simulator policy (see simulator.py) running Ray Tune's scheduler and searcher for `algorithm`."""

    def __init__(self, algorithm: str, suite: Suite, *, seed: int, max_trials: int | None = None) -> None:
        """`max_trials` is TuneConfig's `num_samples` (default unlimited: the simulator's budget ends the sweep)."""
        from ray.tune.schedulers import ASHAScheduler, HyperBandForBOHB, HyperBandScheduler
        from ray.tune.search.sample import _BackwardsCompatibleNumpyRng

        if algorithm not in RAY_ALGORITHMS:
            raise ValueError(f"unknown Ray Tune algorithm {algorithm!r}; known: {', '.join(RAY_ALGORITHMS)}")
        np.random.seed(seed)  # ASHA's bracket draw, hpbandster's sampling (see module docstring)
        self.algorithm = algorithm
        self.suite = suite
        self.max_epochs = suite.max_epochs
        self.metric = suite.metric
        mode = "min" if suite.direction == "minimize" else "max"
        self.space = param_space(suite)
        self.searcher: Any = None
        if algorithm == "asha":
            self.scheduler: Any = ASHAScheduler(time_attr=TIME_ATTR, max_t=self.max_epochs)
        elif algorithm == "hyperband":
            self.scheduler = HyperBandScheduler(time_attr=TIME_ATTR, max_t=self.max_epochs)
        else:
            from ray.tune.search.bohb import TuneBOHB

            self.scheduler = HyperBandForBOHB(time_attr=TIME_ATTR, max_t=self.max_epochs)
            self.searcher = TuneBOHB(seed=seed)
            self.searcher.set_search_properties(self.metric, mode, self.space)
        self.scheduler.set_search_properties(self.metric, mode)
        self.random_state = _BackwardsCompatibleNumpyRng(seed)  # BasicVariantGenerator(random_state=seed)
        self.max_trials = max_trials
        self.max_pending = MAX_PENDING_SEARCHER if self.searcher is not None else MAX_PENDING_RANDOM
        self.controller = SimController(self.scheduler, self.searcher)
        self.by_id: dict[str, SimTrial] = {}
        self.pending: list[SimTrial] = []  # PENDING trials in creation order (FIFO start)

    # -- the controller's loop, one free worker at a time ----------------------------------------------

    def _suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.searcher is not None:
            with _quiet():
                return self.searcher.suggest(trial_id)
        from ray.tune.search.variant_generator import generate_variants

        _, spec = next(generate_variants({"config": self.space}, random_state=self.random_state))
        return dict(spec["config"])

    def _fill(self) -> None:
        """`_maybe_update_trial_queue`: create trials while fewer than `max_pending` are PENDING."""
        from ray.tune.experiment import Trial

        self.pending = [t for t in self.pending if t.status == Trial.PENDING]
        while len(self.pending) < self.max_pending:
            if self.max_trials is not None and len(self.controller.trials) >= self.max_trials:
                return
            trial_id = f"{len(self.controller.trials):05d}"
            config = self._suggest(trial_id)
            if config is None:
                return
            trial = SimTrial(trial_id, config)
            self.controller.trials.append(trial)
            self.by_id[trial_id] = trial
            self.pending.append(trial)
            self.scheduler.on_trial_add(self.controller, trial)

    def next_run(self) -> Run | None:
        from ray.tune.experiment import Trial

        self._fill()
        trial = self.scheduler.choose_trial_to_run(self.controller)
        if trial is None:
            trial = next((t for t in self.pending if t.status == Trial.PENDING), None)
        if trial is None:
            return None
        trial.status = Trial.RUNNING
        self._fill()  # the controller's next step asks the searcher again
        return Run(key=trial.trial_id, config=trial.config, start_epoch=trial.epochs, stop_epoch=self.max_epochs)

    def on_epoch(self, key: str, epoch: int, value: float) -> str:
        from ray.tune.experiment import Trial
        from ray.tune.schedulers import TrialScheduler

        trial = self.by_id[key]
        trial.epochs = epoch
        result = {TIME_ATTR: epoch, self.metric: value, "trial_id": key, "done": False}
        decision = self.scheduler.on_trial_result(self.controller, trial, result)
        if decision != TrialScheduler.STOP and self.searcher is not None:
            with _quiet():
                self.searcher.on_trial_result(key, result)
        trial.last_result = result
        if decision == TrialScheduler.CONTINUE and epoch >= self.max_epochs:
            decision = TrialScheduler.STOP  # the trainable returned after its last epoch: Ray stops it
        if decision == TrialScheduler.STOP:
            self.controller.stop_trial(trial)
            return STOP
        if decision == TrialScheduler.PAUSE:
            trial.status = Trial.PAUSED
            return PAUSE
        if decision != TrialScheduler.CONTINUE:
            raise RuntimeError(f"{type(self.scheduler).__name__} returned {decision!r}, which the simulator cannot run")
        return CONTINUE

    def on_run_end(self, key: str, epoch: int, reason: str) -> None:
        from ray.tune.experiment import Trial

        trial = self.by_id[key]
        if reason == PAUSED and trial.status == Trial.RUNNING:
            trial.status = Trial.PAUSED  # the budget ran out mid-run: the sweep is over
