"""Many Optuna workers on one study: liveness, retry of a dead worker's trials, and an exact trial budget.

Several `hpo run SWEEP.yaml [--join]` processes, on one host or many, share one study in PostgreSQL
(docs/cluster-optuna-workers.md). What keeps them honest together:

* **Heartbeat.** The storage is opened with Optuna's heartbeat (`workers.heartbeat_interval_s`,
  `workers.grace_period_s`); `HeartbeatKeeper` records one for every trial this worker holds, from the moment
  it asks for (or adopts) the trial until it tells the result. Optuna only ever judges a trial that has a
  heartbeat, so the first one is written under the same lock as the ask.
* **Retry.** Before each ask a worker fails the trials whose heartbeat is older than the grace period
  (`optuna.storages.fail_stale_trials`) and Optuna's `RetryHeartbeatStaleTrialCallback` re-queues each as a
  WAITING trial with the same params, user attributes (so the same engine trial id and trial folder) and
  intermediate values, at most `workers.max_retries` times. The worker that picks the retry up continues the
  trial from its last validated checkpoint when the trial folder is shared (the same workspace on every
  host), else from scratch with the same params.
* **Exact budget.** `budget_used` counts logical trials: a retried trial and its retries count once, and a
  WAITING trial only when it is a retry (the queued plan of the first batch is not used yet). Counting and
  asking happen under `StudyMutex`, a PostgreSQL advisory lock on the study, so two workers never both take
  the last slot.

The trainer of a worker's trial is started with the parent-death signal (`setpriv --pdeathsig KILL`): a
worker that dies takes its trainers with it, so a retried trial never has two trainers writing one folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_heartbeat_warnings() -> Iterator[None]:
    """Optuna warns that its heartbeat API is experimental and "supposed to be used with Study.optimize"; we
    drive the heartbeat ourselves with ask/tell (HeartbeatKeeper) on purpose. Used around those calls only,
    from the driver's main thread."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Heartbeat of storage is supposed to be used with Study.optimize")
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        yield

RETRY_ATTR = "failed_trial"  # system attribute Optuna's retry callback sets: the number of the original trial
SHARED_SCHEMES = ("postgresql://", "postgresql+psycopg2://", "postgresql+psycopg://")


def is_shared_storage(url: str | None) -> bool:
    """Whether a storage URL can hold a study shared by several workers (PostgreSQL)."""
    return bool(url) and str(url).startswith(SHARED_SCHEMES)


def is_retry(trial: FrozenTrial) -> bool:
    return RETRY_ATTR in trial.system_attrs


def budget_used(trials: Iterable[FrozenTrial]) -> int:
    """Logical trials that use the budget (see the module docstring)."""
    roots = set()
    for trial in trials:
        if trial.state == TrialState.WAITING and not is_retry(trial):
            continue
        roots.add(trial.system_attrs.get(RETRY_ATTR, trial.number))
    return len(roots)


def retry_callback(max_retries: int) -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    with quiet_heartbeat_warnings():
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retries,
                                                                inherit_intermediate_values=True)


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's `fail_stale_trials` (the retry callback re-queues each failed trial)."""
    with quiet_heartbeat_warnings():
        optuna.storages.fail_stale_trials(study)


class StudyMutex:
    """Serialises "count the budget, then ask" across every worker of a study: a PostgreSQL session-level
    advisory lock keyed by the study name (and a thread lock inside this process). Without a shared
    storage it is the thread lock alone (one driver owns its SQLite study)."""

    def __init__(self, storage: optuna.storages.BaseStorage, study_name: str, *, shared: bool) -> None:
        self._thread_lock = threading.RLock()
        self._engine = getattr(storage, "engine", None) if shared else None
        digest = hashlib.sha256(f"hpo-study:{study_name}".encode()).digest()
        self._key = int.from_bytes(digest[:8], "big", signed=True)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        with self._thread_lock:
            if self._engine is None:
                yield
                return
            import sqlalchemy

            with self._engine.connect() as connection:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
                try:
                    yield
                finally:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
                    connection.commit()


class HeartbeatKeeper:
    """Records a heartbeat every `interval_s` for each trial this worker holds (a daemon thread).

    `hold(trial_id)` writes the first heartbeat at once; `release(trial_id)` stops beating for it. Storage
    errors are logged and retried at the next beat: a database blip must not fail the trial, and a worker
    that cannot beat for a whole grace period is, correctly, taken for dead."""

    def __init__(self, storage: Any, interval_s: float) -> None:
        self.storage = storage
        self.interval_s = interval_s
        self._held: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="optuna-heartbeat", daemon=True)
        self._thread.start()

    def hold(self, trial_id: int) -> None:
        with self._lock:
            self._held.add(trial_id)
        self._beat(trial_id)

    def release(self, trial_id: int) -> None:
        with self._lock:
            self._held.discard(trial_id)

    def _beat(self, trial_id: int) -> None:
        try:
            self.storage.record_heartbeat(trial_id)
        except Exception:  # noqa: BLE001 - see the class docstring
            log.warning("could not record the heartbeat of Optuna trial id %s; retrying", trial_id, exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                held = sorted(self._held)
            for trial_id in held:
                self._beat(trial_id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
