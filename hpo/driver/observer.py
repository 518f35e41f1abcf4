"""Hooks through which trackers (MLflow), promotion and the live table follow a sweep.

Contract (what an observer can rely on):
- Every method is called in the driver process, never in a Ray worker or a trainer subprocess, and never
  concurrently: `ObserverHub` serialises the calls (the Optuna backend drives trials from several threads).
- Call order per sweep: `sweep_started` once; per trial `trial_started`, then `trial_reported` for each new
  validation (epochs increasing; a replay after a resume never repeats an epoch already reported in this
  driver run), then `trial_finished` once the trial is COMPLETED, PRUNED, PAUSED or FAILED; a paused trial
  that runs again gets `trial_started` again. `sweep_finished(summary)` comes last, also when the sweep
  stopped early (all trials failing, time budget, Ctrl-C), with the summary.json object.
- `trial_record` is the live `TrialRecord` (its `to_dict()` is trial.json); observers may set
  `trial_record.mlflow_run_id`, which the engine persists. They must not change anything else.
- A resumed sweep calls `sweep_started` again with `sweep.resumed = True`; observers should reattach to
  the runs they created (mlflow_run_id is in each trial.json) rather than create new ones.
- An exception raised by an observer is logged and does not stop the sweep (tracking is not allowed to
  lose trials), unless the observer sets `fatal = True`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo.driver.context import SweepContext
    from hpo.trials.record import TrialRecord

log = logging.getLogger(__name__)


class SweepObserver:
    """Base class: every hook is a no-op; override what you need."""

    fatal: bool = False

    def sweep_started(self, sweep: SweepContext) -> None:
        """The driver holds the lock and is about to run trials. `sweep.config`, `sweep.workspace`,
        `sweep.metric`, `sweep.direction`, `sweep.space`, `sweep.base_spec`, `sweep.resumed`."""

    def trial_started(self, trial_record: TrialRecord) -> None:
        """A trial's trainer is about to start (or restart after a pause / driver restart)."""

    def trial_reported(self, trial_record: TrialRecord, report: Mapping[str, Any]) -> None:
        """A new validation: `report` is the history entry {epoch, step, kpi, time, checkpoint?}."""

    def trial_finished(self, trial_record: TrialRecord) -> None:
        """The trial reached a final (or paused) state; `trial_record.state` says which."""

    def sweep_finished(self, summary: Mapping[str, Any]) -> None:
        """The sweep ended (for whatever reason); `summary` is the summary.json object."""


class ObserverHub(SweepObserver):
    """Fans calls out to several observers, one call at a time, isolating their failures."""

    def __init__(self, observers: Iterable[SweepObserver] = ()) -> None:
        self.observers = list(observers)
        self._lock = threading.RLock()

    def _call(self, name: str, *args: Any) -> None:
        with self._lock:
            for observer in self.observers:
                try:
                    getattr(observer, name)(*args)
                except Exception:
                    if getattr(observer, "fatal", False):
                        raise
                    log.warning("sweep observer %s.%s failed; the sweep goes on", type(observer).__name__, name,
                                exc_info=True)

    def sweep_started(self, sweep: SweepContext) -> None:
        self._call("sweep_started", sweep)

    def trial_started(self, trial_record: TrialRecord) -> None:
        self._call("trial_started", trial_record)

    def trial_reported(self, trial_record: TrialRecord, report: Mapping[str, Any]) -> None:
        self._call("trial_reported", trial_record, report)

    def trial_finished(self, trial_record: TrialRecord) -> None:
        self._call("trial_finished", trial_record)

    def sweep_finished(self, summary: Mapping[str, Any]) -> None:
        self._call("sweep_finished", summary)
