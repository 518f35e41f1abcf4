"""Cross-check of `synetune.py`'s Tuner stand-in against Syne Tune itself: the same sweep (algorithm, suite, seed,
number of trials) through Syne Tune's own `Tuner` on its own simulator backend and through the benchmark's
simulator, both with one worker, must give every trial the same configuration and train it the same number of
epochs.

The real side is what a Syne Tune user runs to simulate a tuning job on a benchmark:
`Tuner(trial_backend=UserBlackboxBackend(blackbox, elapsed_time_attr=...), scheduler=ASHA/BOHB(<as synetune.py
builds it>), stop_criterion=StoppingCriterion(max_num_trials_started=trials - 1), n_workers=1,
callbacks=[SimulatorCallback()], wait_trial_completion_when_stopping=True)` (the criterion stops once MORE than
its number have started). The blackbox replays the suite's Hartmann curve (deterministic, so both sides see
identical values) with one time unit per epoch; the Tuner, its backend's event queue and its result handling are
Syne Tune's code, so this checks the stand-in's order of calls (suggest, on_trial_add, on_trial_result,
on_trial_remove) and its stopping, not only the scheduler.

    python -m benchmarks.search_efficiency.syne_crosscheck --algorithm bohb --suite mfh3_good --trials 60
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.search_efficiency.env import use_benchmark_env
from benchmarks.search_efficiency.peer_crosscheck import compare
from benchmarks.search_efficiency.peer_crosscheck import main as peer_main

ELAPSED = "elapsed_time"


def simulated(algorithm: str, suite_name: str, seed: int, trials: int) -> list[dict[str, Any]]:
    from benchmarks.search_efficiency.simulator import simulate
    from benchmarks.search_efficiency.suites import get_suite
    from benchmarks.search_efficiency.synetune import SyneTunePolicy

    suite = get_suite(suite_name)
    policy = SyneTunePolicy(algorithm, suite, seed=seed, max_trials=trials)
    simulate(policy, suite, seed=seed, budget_epochs=10**9, workers=1, algorithm=f"syne:{algorithm}")
    return [{"trial": trial_id, "config": trial.config, "epochs": policy.epochs[trial_id]}
            for trial_id, trial in policy.trials.items()]


def real(algorithm: str, suite_name: str, seed: int, trials: int, workdir: Path) -> list[dict[str, Any]]:
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.blackbox_repository.blackbox import Blackbox
    from syne_tune.blackbox_repository.simulated_tabular_backend import UserBlackboxBackend
    from syne_tune.config_space import randint
    from syne_tune.tuner_callback import TunerCallback

    from benchmarks.search_efficiency.suites import get_suite
    from benchmarks.search_efficiency.synetune import TIME_ATTR, SyneTunePolicy, _plain

    suite = get_suite(suite_name)
    space_policy = SyneTunePolicy(algorithm, suite, seed=seed)  # seeds NumPy's global generator, builds the scheduler
    epochs = np.arange(1, suite.max_epochs + 1)

    class CurveBlackbox(Blackbox):
        """The suite's curve per configuration: (epochs, [metric, elapsed time]), one time unit an epoch."""

        def __init__(self) -> None:
            super().__init__(configuration_space=space_policy.space,
                             fidelity_space={TIME_ATTR: randint(1, suite.max_epochs)},
                             objectives_names=[suite.metric, ELAPSED])

        @property
        def fidelity_values(self) -> np.ndarray:
            return epochs

        def _objective_function(self, configuration: dict[str, Any], fidelity: dict | None = None,
                                seed: int | None = None) -> Any:
            curve = suite.curve(_plain(configuration), None)  # type: ignore[arg-type]  # Hartmann: no noise
            return np.array([[curve.value(int(e)), float(e)] for e in epochs])

    seen: dict[int, dict[str, Any]] = {}

    class Record(TunerCallback):
        """Each result the Tuner hands the scheduler: the last one is the epoch the trial was trained to."""

        def on_trial_result(self, trial: Any, status: str, result: dict[str, Any], decision: str) -> None:
            seen[trial.trial_id] = {"config": _plain(trial.config), "epochs": int(result[TIME_ATTR])}

    previous = os.environ.get("SYNETUNE_FOLDER")
    os.environ["SYNETUNE_FOLDER"] = str(workdir)  # the Tuner's result files go under workdir, not ~/syne-tune
    # StoppingCriterion stops once MORE than max_num_trials_started trials have started.
    tuner = Tuner(trial_backend=UserBlackboxBackend(blackbox=CurveBlackbox(), elapsed_time_attr=ELAPSED, seed=0),
                  scheduler=space_policy.scheduler, stop_criterion=StoppingCriterion(max_num_trials_started=trials - 1),
                  n_workers=1, sleep_time=0, callbacks=[SimulatorCallback(), Record()],
                  wait_trial_completion_when_stopping=True, save_tuner=False, print_update_interval=10**6,
                  results_update_interval=10**6)
    try:
        tuner.run()
    finally:
        if previous is None:
            os.environ.pop("SYNETUNE_FOLDER", None)
        else:
            os.environ["SYNETUNE_FOLDER"] = previous
    return [{"trial": trial_id, **seen[trial_id]} for trial_id in sorted(seen)]


def crosscheck(algorithm: str, suite_name: str, seed: int, trials: int, workdir: Path) -> dict[str, Any]:
    use_benchmark_env()
    sim = simulated(algorithm, suite_name, seed, trials)
    syne = real(algorithm, suite_name, seed, trials, workdir)
    return compare("Syne Tune", "syne_tune", algorithm, suite_name, seed, trials, sim, syne)


def main(argv: list[str] | None = None) -> int:
    return peer_main(argv, prog="python -m benchmarks.search_efficiency.syne_crosscheck", description=__doc__,
                     algorithms=("asha", "bohb"), default_algorithm="asha", default_trials=20,
                     crosscheck=crosscheck)


if __name__ == "__main__":
    sys.exit(main())
