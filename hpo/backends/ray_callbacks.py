"""Driver-side bookkeeping for Ray sweeps: trial.json records, observer calls, the all-failing stop.

Ray runs trainables in worker processes; the contract says observers run in the driver. `RayRecordKeeper`
lives in the driver and is the single writer of every Ray trial's trial.json; Ray's callback hooks feed it.
Under `ray.storage` (nodes without a shared filesystem) it also brings an ended trial's files from the storage
into the workspace before anyone reads them (`hpo.backends.ray_storage.fetch_finished_trial`).

Ray pickles `RunConfig` (callbacks, stopper) into the experiment folder for `Tuner.restore`, so the
callback and the stopper carry only a key and look the live keeper up in `_LIVE` — a restored experiment
talks to the new driver's keeper, observers and guard, never to unpickled copies.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune
from ray.tune.experiment import Trial

from hpo.backends.ray_storage import (
    OUTCOME_FILE,
    Incarnation,
    cluster_storage,
    fetch_finished_trial,
    fs_path_of,
    fs_uri,
    read_outcome,
)
from hpo.driver.context import plain
from hpo.driver.guard import INTERRUPTED, TIME_BUDGET
from hpo.trials.lifecycle import ingest_status
from hpo.trials.record import COMPLETED, FAILED, FINISHED_STATES, PAUSED, PRUNED, RUNNING, TrialRecord, load_records
from skillkit.status import Validation

if TYPE_CHECKING:
    from hpo.driver.context import SweepContext
    from hpo.driver.guard import SweepGuard
    from hpo.driver.observer import ObserverHub

log = logging.getLogger(__name__)
# A re-attached trial's record (under ray.storage): the storage folders of its previous Ray trials, oldest first.
PREVIOUS_STORAGE = "ray_storage_before"
_LIVE: dict[str, RayRecordKeeper] = {}


def live_keeper(key: str | None) -> RayRecordKeeper | None:
    """The keeper of the sweep this process drives (by key; the only one when the key is unknown, e.g. a
    searcher restored from an experiment whose workspace was moved)."""
    if key is not None and key in _LIVE:
        return _LIVE[key]
    return next(iter(_LIVE.values())) if len(_LIVE) == 1 else None


class RayRecordKeeper:
    def __init__(self, ctx: SweepContext, observers: ObserverHub, guard: SweepGuard) -> None:
        self.ctx = ctx
        self.observers = observers
        self.guard = guard
        self.records: dict[str, TrialRecord] = {r.trial_id: r for r in load_records(ctx.workspace.trials_dir)}
        self.key = str(ctx.workspace.root.resolve())
        self.ray_status: dict[str, str] = {}
        # Trials finished in an earlier driver run: Ray may restart one whose end its last snapshot missed;
        # the trainable then only repeats its final result, and the record and observers are left alone.
        self.finished_before = {r.trial_id for r in self.records.values() if r.state in FINISHED_STATES}
        self.storage = cluster_storage(ctx)
        self._filesystem: Any = None

    def filesystem(self) -> Any:
        """The storage's pyarrow filesystem (under `ray.storage`), built once."""
        if self._filesystem is None and self.storage is not None:
            self._filesystem = self.storage.filesystem()
        return self._filesystem

    def register(self) -> str:
        _LIVE[self.key] = self
        return self.key

    def unregister(self) -> None:
        _LIVE.pop(self.key, None)

    def _dir(self, trial_id: str) -> Path:
        return self.ctx.workspace.trial_dir(trial_id)

    def _record(self, trial: Trial) -> TrialRecord:
        return self._record_for(trial.trial_id, trial.config)

    def _record_for(self, trial_id: str, config: dict[str, Any]) -> TrialRecord:
        from hpo.backends.ray_trainable import params_of

        record = self.records.get(trial_id)
        if record is None:
            number = max((r.number for r in self.records.values()), default=-1) + 1
            record = TrialRecord(trial_id=trial_id, number=number, params=params_of(config),
                                 metric=self.ctx.metric, direction=self.ctx.direction)
            self.records[trial_id] = record
        return record

    # -- searcher hooks (before Ray launches a trial) ------------------------------------------------------
    def proposed(self, trial_id: str, params: dict[str, Any]) -> None:
        """The searcher proposed Ray trial `trial_id`: record it now, before Ray launches it, so a driver
        killed before Ray's next experiment snapshot leaves a record that the restore re-attaches
        (`reattach`) instead of an unknown trial."""
        if trial_id in self.records:
            return
        record = self._record_for(trial_id, params)
        self._dir(trial_id).mkdir(parents=True, exist_ok=True)
        record.save(self._dir(trial_id))

    def reattach(self, old_id: str, new_id: str) -> dict[str, str]:
        """Engine trial `old_id`, which the restored Ray experiment never knew (the driver died before Ray's
        snapshot recorded it), continues as Ray trial `new_id`: its trainer (if still alive) is stopped, its
        folder (status.json, checkpoints) becomes `new_id`'s, and its record keeps its number and history.
        The trainable then replays its validations to the scheduler and continues from its last checkpoint.
        Under `ray.storage` those files are on a node and in the storage, not in this folder: returns the Ray
        config entry naming the previous incarnation (its id and the storage folder Ray started it with), for
        the trainable to take them up (`HpoTrainable._adopt_previous_incarnation`); {} otherwise."""
        from hpo.trials.runner import stop_orphaned_trainer

        old_dir, new_dir = self._dir(old_id), self._dir(new_id)
        stop_orphaned_trainer(old_dir, grace_s=self.ctx.config.trial.stop_grace_s)
        record = self.records.pop(old_id, None)
        if old_dir.is_dir() and not new_dir.exists():
            os.replace(old_dir, new_dir)
        where = record.resources.get("ray_storage") if record is not None else None
        extra = Incarnation(old_id, fs_path_of(where) if where else None).config_entry() if self.storage else {}
        if record is None:
            return extra
        if self.storage is not None and where:  # its best checkpoint may be there (`_fetch_from_storage`)
            record.resources[PREVIOUS_STORAGE] = [*record.resources.get(PREVIOUS_STORAGE, []), where]
        record.trial_id = new_id
        record.reopen()
        record.save(new_dir)
        self.records[new_id] = record
        self.finished_before.discard(old_id)
        return extra

    # -- hooks ---------------------------------------------------------------------------------------------
    def started(self, trial: Trial) -> None:
        from hpo.backends.ray_trainable import params_of

        if trial.trial_id in self.finished_before:
            return
        self.guard.start_clock()
        record = self._record(trial)
        record.params = params_of(trial.config)
        record.reopen()
        resources = self.ctx.config.resources
        record.resources = {"cpus": resources.cpus_per_trial, "gpus": resources.gpus_per_trial,
                            "ray_trial_name": str(trial), "ray_nodes": list(record.resources.get("ray_nodes", [])),
                            **({PREVIOUS_STORAGE: record.resources[PREVIOUS_STORAGE]}
                               if PREVIOUS_STORAGE in record.resources else {})}
        if self.storage is not None:  # where its checkpoints are kept: what the driver fetches when it ends
            record.resources["ray_storage"] = fs_uri(trial.storage.trial_fs_path)
        self._dir(trial.trial_id).mkdir(parents=True, exist_ok=True)
        record.save(self._dir(trial.trial_id))
        self.observers.trial_started(record)

    def result(self, trial: Trial, result: dict[str, Any]) -> None:
        validation = Validation.from_history(result.get("validation") or {}, self.ctx.metric)
        if validation is None:
            return
        epoch = validation.epoch
        if trial.trial_id in self.finished_before:
            return
        record = self._record(trial)
        if record.state != RUNNING:
            record.reopen()
        if result.get("exploited_from"):
            donor = json.loads(result["exploited_from"])
            record.params = plain(json.loads(result["params_json"]))
            record.lineage.append({**donor, "params": dict(record.params)})
        new = epoch not in record.epochs()
        if result.get("node_id"):
            nodes = record.resources.setdefault("ray_nodes", [])
            if not nodes or nodes[-1] != result["node_id"]:
                nodes.append(result["node_id"])  # the nodes the trial ran on, in order
        record.add_validation(validation, result.get("checkpoint_name"))
        record.save(self._dir(trial.trial_id))
        if new:
            self.guard.trial_reported(record.trial_id)
            entry = next(e for e in record.history if e["epoch"] == epoch)
            self.observers.trial_reported(record, entry)

    def completed(self, trial: Trial) -> None:
        if trial.trial_id in self.finished_before:
            return
        record = self._record(trial)
        if record.epochs_trained() >= self.ctx.max_epochs:
            self._finish(record, COMPLETED)
        elif self.guard.reason is not None:
            self._finish(record, PAUSED, count=False)  # stopped by the sweep ending, not by the scheduler
        else:
            self._finish(record, PRUNED)

    def errored(self, trial: Trial) -> None:
        if trial.trial_id in self.finished_before:
            return
        record = self._record(trial)
        outcome_file = self._dir(trial.trial_id) / OUTCOME_FILE
        outcome = json.loads(outcome_file.read_text()) if outcome_file.is_file() else None
        if outcome is None and self.storage is not None:  # written on the node that ran it
            outcome = read_outcome(self.filesystem(), trial.storage.trial_fs_path)
        if outcome:
            klass, reason = outcome["failure_class"], outcome["failure_reason"]
        else:
            klass, reason = "internal", _ray_error(trial)
        self._finish(record, FAILED, klass, reason)

    def step(self, trials: list[Trial]) -> None:
        for trial in trials:
            if trial.status == Trial.PAUSED:
                record = self.records.get(trial.trial_id)
                if record is not None and record.state == RUNNING:
                    self._finish(record, PAUSED, count=False)

    def experiment_ended(self, trials: list[Trial]) -> None:
        self.ray_status = {trial.trial_id: trial.status for trial in trials}

    def unfinished(self) -> list[str]:
        """Trials Ray itself left unfinished (PENDING/RUNNING/PAUSED at the end of fit: an interrupt)."""
        return [tid for tid, status in self.ray_status.items() if status not in (Trial.TERMINATED, Trial.ERROR)]

    def settle(self) -> None:
        """After `fit()`, make every record final and complete:

        - every validation its trainer wrote is in it (one Ray dropped while stopping the trial included);
        - after an interrupt or the time budget, trials below their budget are PAUSED: Ray's saved experiment
          state still has them running, so `hpo resume` (Tuner.restore) continues them;
        - a record still RUNNING for a trial Ray had already ended (the previous driver died before recording
          the end) gets the state its history implies;
        - a record Ray never knew (created after Ray's last snapshot before the driver died, so not restored)
          is COMPLETED if its trainer finished the budget, else FAILED as killed: its results are kept."""
        for record in self.records.values():
            if record.state == RUNNING:
                self._fetch_from_storage(record)  # under ray.storage: its status.json is on a node, and stored
            if ingest_status(record, self._dir(record.trial_id)):
                record.save(self._dir(record.trial_id))
        interrupted = self.guard.reason in (INTERRUPTED, TIME_BUDGET)
        unfinished = set(self.unfinished())
        for record in [r for r in self.records.values() if r.state == RUNNING]:
            reached = record.epochs_trained() >= self.ctx.max_epochs
            status = self.ray_status.get(record.trial_id)
            if reached:
                self._finish(record, COMPLETED)
            elif interrupted or record.trial_id in unfinished:
                self._finish(record, PAUSED, count=False)
            elif status == Trial.TERMINATED:
                self._finish(record, PRUNED)
            else:
                self._finish(record, FAILED, "killed", "the driver died before Ray recorded this trial, so the "
                             "restored experiment could not continue it; its reported results are kept")

    def _fetch_from_storage(self, record: TrialRecord) -> None:
        """Under `ray.storage`: the ended trial's status.json, spec.yaml and best checkpoint into the workspace
        (a failed fetch is logged; the record and its history are complete without it)."""
        where = record.resources.get("ray_storage")
        if self.storage is None or not where:
            return
        best = (record.best or {}).get("checkpoint")
        previous = [fs_path_of(before) for before in record.resources.get(PREVIOUS_STORAGE, [])]
        try:
            fetch_finished_trial(self.filesystem(), fs_path_of(where), self._dir(record.trial_id), best, previous)
        except OSError as error:
            log.warning("could not fetch trial %s's files from %s: %s", record.trial_id, where, error)

    def _finish(self, record: TrialRecord, state: str, failure_class: str | None = None,
                failure_reason: str | None = None, *, count: bool = True) -> None:
        self._fetch_from_storage(record)
        record.finish(state, failure_class=failure_class, failure_reason=failure_reason)
        record.save(self._dir(record.trial_id))
        if count:
            self.guard.trial_finished(record)
        self.observers.trial_finished(record)


def _ray_error(trial: Trial) -> str:
    try:
        path = trial.error_file
        text = Path(path).read_text() if path else ""
    except (OSError, TypeError, AttributeError):
        text = ""
    return (text.strip().splitlines() or ["the Ray trial failed without an error file"])[-1]


class RecordCallback(tune.Callback):
    def __init__(self, key: str) -> None:
        self.key = key

    def setup(self, **info: Any) -> None:
        """Chain onto Ray's Ctrl-C handler (installed just before this runs), so the sweep guard knows that
        a run Ray ends on SIGINT was interrupted and its trials are to be PAUSED, not taken as pruned."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum: int, frame: Any) -> None:
            if keeper := self._keeper():
                keeper.guard.interrupt()
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGINT, on_sigint)

    def _keeper(self) -> RayRecordKeeper | None:
        return _LIVE.get(self.key)

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if keeper := self._keeper():
            keeper.started(trial)

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        if keeper := self._keeper():
            keeper.result(trial, result)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if keeper := self._keeper():
            keeper.completed(trial)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if keeper := self._keeper():
            keeper.errored(trial)

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if keeper := self._keeper():
            keeper.step(trials)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        if keeper := self._keeper():
            keeper.experiment_ended(trials)


class GuardStopper(tune.Stopper):
    """Ends the experiment when the sweep guard says so.

    Every trial failing: Ray stops all trials (the sweep is over). The time budget, or an interrupt that
    arrived before Tune's own signal handler was in place: Ray is asked to end the run the way Ctrl-C does
    (its SIGUSR1 handler), so unfinished trials stay unfinished in the experiment state and `hpo resume`
    (Tuner.restore) continues them from their checkpoints.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self._interrupted = False

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        from hpo.driver.guard import ALL_FAILED

        keeper = _LIVE.get(self.key)
        if keeper is None or not keeper.guard.stopped:
            return False
        if keeper.guard.reason in (TIME_BUDGET, INTERRUPTED) and not self._interrupted and hasattr(signal, "SIGUSR1"):
            self._interrupted = True
            os.kill(os.getpid(), signal.SIGUSR1)
        return keeper.guard.reason == ALL_FAILED
