"""Syne Tune's own multi-fidelity schedulers, driven in-process on the simulator: `syne:asha` and `syne:bohb` —
as a bare Syne Tune 0.16 user configures its baselines, no Tuner or trial backend started.

What a bare user writes, and what runs here:

    config_space = {"x0": uniform(0, 1), "lr": loguniform(1e-4, 1e-1), ...}      # `config_space(suite)`
    syne:asha     ASHA(config_space, metric=..., time_attr="epoch", max_t=R, do_minimize=..., random_seed=seed)
    syne:bohb     BOHB(same arguments)

Every other argument is the baseline's default (syne_tune/optimizer/baselines.py): grace period 1, reduction
factor 3, one bracket (rungs at 1, 3, 9 epochs when R = 27), random proposals for ASHA; BOHB is the same
asynchronous successive halving with the `kde` searcher (top 15 %, 64 candidates, bandwidth factor 3, a third
of the proposals random), wrapped by Syne Tune in `LastValueMultiFidelitySearcher`: the KDEs are refitted on the
LAST value each trial reported, whatever its epoch, once 5 trials have reported, and they propose only once the
"good" 15 % of those trials outnumber the dimensions (`_check_data_shape_and_good_size`: 27 trials in 3-D, 47
in 6-D); until then every proposal is random. The two other multi-fidelity baselines of 0.16 are not offered:
ASHABORE's `bore` searcher and ASHACQR's `cqr` searcher (through
`transfer_learning/quantile_based/quantile_based_searcher.py`) import xgboost at module level, which the
benchmark does not install (constructing either raises ModuleNotFoundError: No module named 'xgboost').

Syne Tune 0.16's `AsynchronousSuccessiveHalving` only stops: `on_trial_result` returns CONTINUE or STOP (a
trial that is not in the top 1/3 of its rung when it reaches it stops; one at `max_t` stops), never PAUSE, so
no trial is ever paused or resumed and none retrains an epoch. (The "promotion" variant of older Syne Tune
releases, which paused trials and resumed them from their checkpoint, is gone from 0.16.) The policy still
follows the Tuner for the two other decisions, in case a scheduler makes them: PAUSE parks the trial, and a
`TrialSuggestion` that resumes it (`spawn_new_trial_id=False`) continues at the epoch it paused at (Syne Tune
restarts the script, which resumes from its checkpoint); a new trial from another trial's checkpoint (PBT) is
refused, since no suite can replay a curve whose configuration changes mid-run.

What Syne Tune's `Tuner` does around a scheduler (syne_tune/tuner.py, 0.16) and what runs here:

- A free worker: `scheduler.suggest()`; a new trial gets the next integer id, `scheduler.on_trial_add(trial)`
  (where ASHA draws the trial's bracket with NumPy's global generator) and trains from epoch 0 towards R.
  `suggest()` returning None (config space exhausted) starts nothing.
- Each epoch's result `{"epoch": epoch, <metric>: value}` goes to `scheduler.on_trial_result` (which also hands
  it to the searcher). STOP: the Tuner stops the trial and calls `scheduler.on_trial_remove`; PAUSE: it pauses it
  and calls `on_trial_remove`. A trial whose script ends after epoch R without a STOP gets
  `scheduler.on_trial_complete(trial, last_result)` — ASHA stops every trial at `max_t` first, so in practice
  it never does.
- Results are handled one at a time in simulated-time order (the simulator backend's order); the Tuner's
  `Trial.creation_time` (a wall-clock datetime none of the schedulers read) is a fixed date so nothing in a
  sweep depends on the clock.

Seeding: `random_seed=seed` seeds the scheduler and its searchers; Syne Tune also draws from NumPy's global
generator (ASHA's bracket choice; `Domain.sample()` without a random state, which ASHA's random searcher uses
once 5 trials have reported and the KDE searcher uses for its random third), so the policy seeds that too when
it is built — with a value derived from the seed (`global_seed`), not the seed itself: the wrapper's own first
5 random proposals come from `RandomState(seed)`, and a global generator seeded with the same number would
replay them as proposals 6, 7, ... (the cross-check showed such duplicates before this).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from benchmarks.search_efficiency.simulator import CONTINUE, PAUSE, STOP, Run
from benchmarks.search_efficiency.suites import Suite

SYNE_ALGORITHMS = ("asha", "bohb")
# Both import xgboost at module level (bore/bore.py; cqr through quantile_based_searcher.py), not installed here.
NOT_OFFERED = {name: f"{cls}'s {searcher} searcher imports xgboost, which the benchmark environment does not install"
               for name, cls, searcher in (("ashabore", "ASHABORE", "bore"), ("ashacqr", "ASHACQR", "cqr"))}
TIME_ATTR = "epoch"
_BASELINES = {"asha": "ASHA", "bohb": "BOHB"}
_CREATED = datetime.datetime(2026, 1, 1)

# BOHB's constructor warns that its `points_to_evaluate` (None) is passed twice; the sweep's output stays readable.
logging.getLogger("syne_tune").setLevel(logging.ERROR)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """statsmodels warns on every KDE the BOHB searcher fits that its default generator will change in a later
    release (the searcher passes none); nothing in the sweep depends on it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def config_space(suite: Suite) -> dict[str, Any]:
    """The suite's parameters as a Syne Tune config space (Syne Tune's integer domains include both bounds, as
    the suite's do; a log-scaled parameter is `loguniform`/`lograndint`)."""
    from syne_tune.config_space import choice, lograndint, loguniform, randint, uniform

    space: dict[str, Any] = {}
    for param in suite.parameters:
        if param.type == "categorical":
            space[param.name] = choice(list(param.enum))
            continue
        low, high = param.minimum, param.maximum
        log = param.scale == "log"
        if param.type == "int":
            space[param.name] = (lograndint if log else randint)(int(low), int(high))  # type: ignore[arg-type]
        else:
            space[param.name] = (loguniform if log else uniform)(float(low), float(high))  # type: ignore[arg-type]
    return space


def global_seed(seed: int) -> int:
    """The seed of NumPy's global generator for sweep `seed`: a stream apart from `RandomState(seed)`."""
    return int(np.random.SeedSequence([seed, 8191]).generate_state(1)[0])


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in config.items()}


class SyneTunePolicy:
    """A simulator policy (see simulator.py) running one of Syne Tune's multi-fidelity baselines."""

    def __init__(self, algorithm: str, suite: Suite, *, seed: int, max_trials: int | None = None) -> None:
        """`max_trials`: start no more trials than this (StoppingCriterion(max_num_trials_started=...) with the
        Tuner waiting for the running ones, as the cross-check runs it); default unlimited, the budget ends it."""
        from syne_tune.optimizer import baselines

        if algorithm in NOT_OFFERED:
            raise ValueError(f"syne:{algorithm} is not simulated: {NOT_OFFERED[algorithm]}.")
        if algorithm not in SYNE_ALGORITHMS:
            raise ValueError(f"unknown Syne Tune algorithm {algorithm!r}; known: {', '.join(SYNE_ALGORITHMS)}")
        np.random.seed(global_seed(seed))  # ASHA's bracket draw, Domain.sample() (module docstring)
        self.algorithm = algorithm
        self.suite = suite
        self.max_epochs = suite.max_epochs
        self.metric = suite.metric
        self.space = config_space(suite)
        self.scheduler: Any = getattr(baselines, _BASELINES[algorithm])(
            config_space=self.space, metric=self.metric, time_attr=TIME_ATTR, max_t=self.max_epochs,
            do_minimize=suite.direction == "minimize", random_seed=seed)
        self.max_trials = max_trials
        self.trials: dict[int, Any] = {}
        self.epochs: dict[int, int] = {}  # epochs trained so far: where a resumed trial continues
        self.last_result: dict[int, dict[str, Any]] = {}

    def next_run(self) -> Run | None:
        """The Tuner's `_schedule_new_task` for one free worker."""
        from syne_tune.backend.trial_status import Trial

        if self.max_trials is not None and len(self.trials) >= self.max_trials:
            return None
        with _quiet():
            suggestion = self.scheduler.suggest()
        if suggestion is None:
            return None
        if suggestion.spawn_new_trial_id:
            if suggestion.checkpoint_trial_id is not None:
                raise RuntimeError(f"syne:{self.algorithm} started a trial from trial {suggestion.checkpoint_trial_id}'s "
                                   "checkpoint with a new configuration; no suite can replay such a curve")
            trial_id = len(self.trials)
            trial = Trial(trial_id=trial_id, config=_plain(suggestion.config), creation_time=_CREATED)
            self.trials[trial_id] = trial
            self.epochs[trial_id] = 0
            self.scheduler.on_trial_add(trial=trial)
        else:
            trial_id = suggestion.checkpoint_trial_id
            trial = self.trials[trial_id]
            if suggestion.config is not None and _plain(suggestion.config) != trial.config:
                raise RuntimeError(f"syne:{self.algorithm} resumed trial {trial_id} with a new configuration; no "
                                   "suite can replay such a curve")
        return Run(key=trial_id, config=trial.config, start_epoch=self.epochs[trial_id], stop_epoch=self.max_epochs)

    def on_epoch(self, key: int, epoch: int, value: float) -> str:
        """The Tuner's `_update_running_trials` for one result."""
        from syne_tune.optimizer.scheduler import SchedulerDecision

        trial = self.trials[key]
        self.epochs[key] = epoch
        result = {TIME_ATTR: epoch, self.metric: value}
        self.last_result[key] = result
        with _quiet():
            decision = self.scheduler.on_trial_result(trial=trial, result=result)
        if decision == SchedulerDecision.STOP:
            self.scheduler.on_trial_remove(trial=trial)
            return STOP
        if decision == SchedulerDecision.PAUSE:
            self.scheduler.on_trial_remove(trial=trial)
            return PAUSE
        if decision != SchedulerDecision.CONTINUE:
            raise RuntimeError(f"{type(self.scheduler).__name__} returned {decision!r}, which the simulator cannot run")
        if epoch >= self.max_epochs:  # the script ended after its last epoch without a STOP: it completed
            self.scheduler.on_trial_complete(trial, result)
            return STOP
        return CONTINUE

    def on_run_end(self, key: int, epoch: int, reason: str) -> None:
        """Nothing to tell: the Tuner reports stops, pauses and completions through `on_epoch`'s decisions."""
