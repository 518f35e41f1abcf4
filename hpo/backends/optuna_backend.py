"""Optuna backend: an ask/tell study in SQLite (default, inside the workspace) or PostgreSQL, with up to
`max_concurrent` trials at once, each a thread driving one trainer subprocess.

Why ask/tell instead of `study.optimize`: the engine must own the trial lifecycle — report each validation
as it appears, stop a pruned trainer with SIGTERM, keep a trial RUNNING in storage when the driver is
interrupted so `hpo resume` can continue it from its checkpoint, and never let a failed or pruned trial's
partial score pass for a full-budget result.

The flaw fix: a pruned trial is told `TrialState.PRUNED` with only its intermediate values (one per epoch),
never COMPLETE with its partial score. TPE ranks PRUNED trials after every COMPLETE one (by how far they
got), GP and CMA-ES ignore them, so an early-stopped trial's score is never taken as a full-budget result.
A COMPLETE trial's value is its best validation over the full budget (the checkpoint that would be promoted).

Threads: the main thread asks, launches and collects; each trial thread reports/prunes/tells under
`self._study_lock` (storage calls are serialised) and calls observers through the hub (which serialises
them too). Resume: trials left RUNNING by this worker are adopted — any trainer still alive is stopped,
validations its status.json holds beyond the stored intermediate values are reported first, then it
continues from the checkpoint of its last validated epoch (or is told COMPLETE if it had finished).

Several workers on one PostgreSQL study (`hpo run --join`, hpo/backends/optuna_workers.py): trials carry a
heartbeat; before each ask a worker fails the trials of workers that fell silent and Optuna re-queues them;
a re-queued trial is taken up like an adopted one (same trial id and folder, reports replayed, continued
from its checkpoint). The budget counts logical trials under a study-wide lock. The first worker (`hpo run`
without --join) waits at the end until no trial of the study is running anywhere, taking up re-queued ones,
so the sweep it summarises and promotes is complete.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

from hpo.backends import algorithms
from hpo.backends.optuna_factory import make_pruner, make_sampler, make_storage, storage_url
from hpo.backends.optuna_workers import (
    HeartbeatKeeper,
    StudyMutex,
    budget_used,
    fail_stale_trials,
    is_retry,
    is_shared_storage,
    quiet_heartbeat_warnings,
    retry_callback,
)
from hpo.driver.context import SweepContext, plain
from hpo.driver.guard import SweepGuard
from hpo.driver.observer import ObserverHub
from hpo.trials.failures import Failure
from hpo.trials.lifecycle import build_process, final_state, ingest_status, record_validation, resume_point
from hpo.trials.record import COMPLETED, FAILED, PAUSED, PRUNED, TrialRecord
from hpo.trials.resources import GpuPool, detect_gpus
from hpo.trials.runner import stop_orphaned_trainer
from skillkit.checkpoints import epochs_trained

log = logging.getLogger(__name__)

TRIAL_ID_ATTR = "hpo_trial_id"
WORKER_ATTR = "hpo_worker"
# The pruner's latest decision for a trial: {"step": epochs trained, "prune": bool} (see `_replay_reports`).
DECISION_ATTR = "hpo_decision"


def trial_id_for(number: int) -> str:
    return f"trial_{number:04d}"


class OptunaBackend:
    def __init__(self, ctx: SweepContext, observers: ObserverHub, guard: SweepGuard,
                 planned: Sequence[Mapping[str, Any]] = ()) -> None:
        self.ctx = ctx
        self.observers = observers
        self.guard = guard
        self.algorithm = ctx.config.algorithm
        self._study_lock = threading.RLock()
        self._stop_all = threading.Event()
        self.storage_url = storage_url(ctx.config.storage, ctx.workspace.state_dir)
        self.shared = is_shared_storage(ctx.config.storage)
        self.storage = self._make_storage()
        self.study = self._open_study()
        self.mutex = StudyMutex(self.storage, ctx.config.name, shared=self.shared)
        workers = ctx.config.workers
        self.heartbeats = HeartbeatKeeper(self.storage, workers.heartbeat_interval_s) if self.shared else None
        # A grid sweep never asks for more trials than its grid has points.
        self.max_trials = algorithms.trial_budget(self.algorithm, ctx.space, ctx.max_epochs)
        self.gpus = GpuPool(detect_gpus(ctx.config.resources.gpus), ctx.config.resources.gpus_per_trial)
        if planned and not self.study.get_trials(deepcopy=False):
            # The plan's first batch runs exactly as shown by `hpo plan` (static points: one value per
            # primitive draw, which `space.suggest` asks for).
            for params in planned:
                self.study.enqueue_trial(dict(params), skip_if_exists=True)

    # -- study ---------------------------------------------------------------------------------------------
    def _make_storage(self) -> optuna.storages.RDBStorage:
        if not self.shared:
            return make_storage(self.storage_url)
        workers = self.ctx.config.workers
        with quiet_heartbeat_warnings():
            return make_storage(self.storage_url, heartbeat_interval_s=workers.heartbeat_interval_s,
                                grace_period_s=workers.grace_period_s,
                                stale_trial_callback=retry_callback(workers.max_retries))

    def _open_study(self) -> optuna.Study:
        storage = self.storage
        direction: Literal["maximize", "minimize"] = "maximize" if self.ctx.direction == "maximize" else "minimize"
        with quiet_heartbeat_warnings():
            study = self._create_study(storage, direction)
        study.set_user_attr("metric", self.ctx.metric)
        return study

    def _create_study(self, storage: optuna.storages.RDBStorage,
                      direction: Literal["maximize", "minimize"]) -> optuna.Study:
        return optuna.create_study(
            study_name=self.ctx.config.name, storage=storage, direction=direction, load_if_exists=True,
            sampler=make_sampler(self.algorithm, self.ctx.space, self.ctx.config.seed, epoch_budget=self.ctx.max_epochs),
            pruner=make_pruner(self.algorithm, self.ctx.max_epochs),
        )

    def _counted_trials(self) -> int:
        """Logical trials that use the budget, from every worker sharing the study (optuna_workers)."""
        with self._study_lock:
            return budget_used(self.study.get_trials(deepcopy=False))

    def _hold(self, trial: optuna.trial.Trial) -> None:
        if self.heartbeats is not None:
            self.heartbeats.hold(trial._trial_id)

    def _release(self, trial: optuna.trial.Trial) -> None:
        if self.heartbeats is not None:
            self.heartbeats.release(trial._trial_id)

    def stop(self) -> None:
        """Pause every running trial (Ctrl-C, SIGTERM); safe from a signal handler."""
        self._stop_all.set()

    # -- main loop -----------------------------------------------------------------------------------------
    def run(self) -> None:
        capacity = self.gpus.capacity
        slots = self.ctx.config.resources.max_concurrent if capacity is None else min(self.ctx.config.resources.max_concurrent, capacity)
        running: dict[Future[Any], str] = {}
        self.guard.start_clock()
        queue = self._orphans()
        try:
            with ThreadPoolExecutor(max_workers=max(1, slots), thread_name_prefix="trial") as pool:
                while True:
                    if self.guard.stopped:
                        self._stop_all.set()
                    while len(running) < slots and not self._stop_all.is_set():
                        job = queue.pop(0) if queue else self._ask()
                        if job is None:
                            break
                        trial, record, resume_from = job
                        cuda = self.gpus.acquire(record.trial_id)
                        if cuda is None:  # no GPU share free right now; retry after a trial ends
                            queue.insert(0, job)
                            break
                        running[pool.submit(self._drive, trial, record, resume_from, cuda)] = record.trial_id
                    if not running:
                        if self._stop_all.is_set() or not self._others_still_running():
                            break
                        time.sleep(self._wait_interval_s())
                        continue
                    done, _ = wait(list(running), timeout=0.25, return_when=FIRST_COMPLETED)
                    for future in done:
                        trial_id = running.pop(future)
                        self.gpus.release(trial_id)
                        future.result()  # re-raise engine bugs (never trainer failures, which are states)
        finally:
            if self.heartbeats is not None:
                self.heartbeats.close()

    def _others_still_running(self) -> bool:
        """The first worker of a shared study waits until no trial runs anywhere (a worker that dies now
        has its trial re-queued, and this worker takes it up); joined workers and single drivers do not."""
        if not self.shared or self.ctx.joined:
            return False
        with self._study_lock:
            trials = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
        return bool(trials)

    def _wait_interval_s(self) -> float:
        return max(0.5, min(5.0, self.ctx.config.workers.heartbeat_interval_s / 2))

    def _ask(self) -> tuple[optuna.trial.Trial, TrialRecord, Path | None] | None:
        """The next trial to run (a new one, or one re-queued after its worker died), or None when the budget
        is spent. Counting and asking hold the study-wide lock, so the budget is exact across workers."""
        while True:
            with self.mutex.hold(), self._study_lock:
                if self.heartbeats is not None:
                    fail_stale_trials(self.study)
                trials = self.study.get_trials(deepcopy=False)
                retry_waiting = any(t.state == TrialState.WAITING and is_retry(t) for t in trials)
                if budget_used(trials) >= self.max_trials and not retry_waiting:
                    return None
                trial = self.study.ask()
                self._hold(trial)
                frozen = self.storage.get_trial(trial._trial_id)
                if not is_retry(frozen):
                    params = plain(self.ctx.space.suggest(trial, epoch_budget=self.ctx.max_epochs))
                    trial_id = trial_id_for(trial.number)
                    trial.set_user_attr(TRIAL_ID_ATTR, trial_id)
                    trial.set_user_attr(WORKER_ATTR, self.ctx.worker_id)
                    record = TrialRecord(trial_id=trial_id, number=trial.number, params=params,
                                         metric=self.ctx.metric, direction=self.ctx.direction)
                    return trial, record, None
            job = self._take_up_retry(trial, frozen)
            if job is not None:
                return job

    def _take_up_retry(self, trial: optuna.trial.Trial, frozen: optuna.trial.FrozenTrial
                       ) -> tuple[optuna.trial.Trial, TrialRecord, Path | None] | None:
        """A trial Optuna re-queued because its worker died: same trial id and folder, continued from its last
        validated checkpoint when this worker can see the folder (a shared workspace)."""
        trial_id = frozen.user_attrs.get(TRIAL_ID_ATTR, trial_id_for(frozen.system_attrs["failed_trial"]))
        trial.set_user_attr(WORKER_ATTR, self.ctx.worker_id)
        trial_dir = self.ctx.workspace.trial_dir(trial_id)
        log.warning("%s: its worker stopped sending heartbeats; taking it up (Optuna trial %d retries trial %d)",
                    trial_id, trial.number, frozen.system_attrs["failed_trial"])
        return self._continue_trial(trial, trial_id, trial_dir, set(frozen.intermediate_values))

    # -- resume --------------------------------------------------------------------------------------------
    def _orphans(self) -> list[tuple[optuna.trial.Trial, TrialRecord, Path | None]]:
        """Trials this worker left RUNNING (driver killed, interrupted, time budget): adopt them.

        A trial the driver died creating (asked, but killed before it was tagged or its record written) has no
        worker tag; with the workspace's own SQLite study it can only be ours, so it is adopted too. Its
        sampling is completed by running the space's `suggest` on it again (values already drawn are kept)."""
        own_storage = self.ctx.config.storage is None
        jobs = []
        with self._study_lock:
            frozen = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                      if t.user_attrs.get(WORKER_ATTR) == self.ctx.worker_id
                      or (own_storage and WORKER_ATTR not in t.user_attrs)]
        for ft in sorted(frozen, key=lambda t: t.number):
            trial_id = ft.user_attrs.get(TRIAL_ID_ATTR, trial_id_for(ft.number))
            trial = optuna.trial.Trial(self.study, ft._trial_id)
            self._hold(trial)
            job = self._continue_trial(trial, trial_id, self.ctx.workspace.trial_dir(trial_id),
                                       set(ft.intermediate_values))
            if job is not None:
                jobs.append(job)
        return jobs

    def _continue_trial(self, trial: optuna.trial.Trial, trial_id: str, trial_dir: Path, stored: set[int]
                        ) -> tuple[optuna.trial.Trial, TrialRecord, Path | None] | None:
        """Adopt a trial that ran before (this worker's previous driver, or a worker that died): stop a trainer
        of it still alive on this host, replay what its status.json holds beyond `stored` through the pruner
        (each report followed by the pruner's decision, as live), and continue it from its last validated
        checkpoint. None when it needs no more training: it finished its budget (told COMPLETE), the pruner
        stopped it before or during the replay (told PRUNED), or its previous driver recorded its end."""
        if stop_orphaned_trainer(trial_dir, grace_s=self.ctx.config.trial.stop_grace_s):
            log.warning("stopped trainer of %s left running by the previous driver", trial_id)
        record = self._load_or_create_record(trial_dir, trial_id, trial)
        # What the previous driver recorded last: RUNNING/PAUSED, or an end it died before telling the study.
        recorded = record.state
        failure = Failure(record.failure_class or "internal", record.failure_reason or "failed before a restart")
        ingest_status(record, trial_dir)
        with self._study_lock:
            pruned = self._replay_reports(trial, record, stored)
        record.reopen()
        record.save(trial_dir)
        if recorded == FAILED:
            self._finish(trial, record, FAILED, failure)
            return None
        if pruned or recorded == PRUNED:
            self._finish(trial, record, PRUNED, None)
            return None
        if record.epochs_trained() >= self.ctx.max_epochs:
            self._finish(trial, record, COMPLETED, None)
            return None
        point = resume_point(trial_dir, [(e["epoch"], e.get("step")) for e in record.history])
        return trial, record, point.path if point else None

    def _load_or_create_record(self, trial_dir: Path, trial_id: str, trial: optuna.trial.Trial) -> TrialRecord:
        try:
            return TrialRecord.load(trial_dir, metric=self.ctx.metric, direction=self.ctx.direction)
        except (OSError, ValueError, KeyError):
            with self._study_lock:
                params = plain(self.ctx.space.suggest(trial, epoch_budget=self.ctx.max_epochs))
                trial.set_user_attr(TRIAL_ID_ATTR, trial_id)
                trial.set_user_attr(WORKER_ATTR, self.ctx.worker_id)
            trial_dir.mkdir(parents=True, exist_ok=True)
            return TrialRecord(trial_id=trial_id, number=trial.number, params=params, metric=self.ctx.metric,
                               direction=self.ctx.direction)

    def _replay_reports(self, trial: optuna.trial.Trial, record: TrialRecord, stored: set[int]) -> bool:
        """Give the study the record's validations it lacks, oldest first, each followed by the pruner's
        decision exactly as `_drive` makes it live; True when the trial is to be pruned.

        Optuna's step is the epochs trained (the resource its pruners count), not TAO's 0-based epoch index.
        A decision the previous driver made is read back from the trial (DECISION_ATTR, written before it
        acted), never asked again: a pruner such as successive halving records a rung as done when asked,
        so asking twice would not give the same answer. A report whose decision was never made (the
        driver died between the two) is decided now."""
        decided = trial.user_attrs.get(DECISION_ATTR) or {}
        if decided.get("prune"):
            return True
        last = max(stored, default=0)
        if last > int(decided.get("step", 0)) and self._decide(trial, last):
            return True
        for epoch, value in record.metric_values():
            step = epochs_trained(epoch)
            if step in stored:
                continue
            trial.report(value, step)
            stored.add(step)
            if self._decide(trial, step):
                return True
        return False

    def _decide(self, trial: optuna.trial.Trial, step: int) -> bool:
        """The pruner's decision at the trial's latest report (`step` epochs trained), recorded in the
        trial before anyone acts on it, so a driver that dies right after cannot have it asked again.
        Caller holds the study lock."""
        prune = bool(step < self.ctx.max_epochs and trial.should_prune())
        trial.set_user_attr(DECISION_ATTR, {"step": step, "prune": prune})
        return prune

    # -- one trial (runs in a pool thread) -----------------------------------------------------------------
    def _drive(self, trial: optuna.trial.Trial, record: TrialRecord, resume_from: Path | None, cuda: str) -> None:
        trial_dir = self.ctx.workspace.trial_dir(record.trial_id)
        trial_dir.mkdir(parents=True, exist_ok=True)
        record.resources = {"cpus": self.ctx.config.resources.cpus_per_trial,
                            "gpus": self.ctx.config.resources.gpus_per_trial, "cuda_visible_devices": cuda}
        record.reopen()
        # A worker of a shared study takes its trainers with it when it dies (optuna_workers docstring).
        process = build_process(self.ctx, record, trial_dir, resume_from=resume_from, cuda_visible_devices=cuda,
                                kill_with_parent=self.shared)
        record.save(trial_dir)
        self.observers.trial_started(record)
        if isinstance(process, Failure):
            self._finish(trial, record, FAILED, process)
            return
        process.start()
        stored = {epochs_trained(epoch) for epoch in record.epochs()}
        pruned = paused = False
        while True:
            if self._stop_all.is_set() and not (pruned or paused):
                paused = True
                process.stop()
            validation = process.poll()
            if validation is None:
                if process.ended:
                    break
                time.sleep(process.launch.poll_interval_s)
                continue
            entry, new = record_validation(record, validation, trial_dir)
            record.save(trial_dir)
            if new:
                self.guard.trial_reported(record.trial_id)
                self.observers.trial_reported(record, entry)
            if validation.epochs_trained in stored or pruned or paused:
                continue
            stored.add(validation.epochs_trained)
            with self._study_lock:
                trial.report(validation.value, validation.epochs_trained)
                should_prune = self._decide(trial, validation.epochs_trained)
            if should_prune:
                pruned = True
                process.stop()
        exit = process.exit()
        state, failure = final_state(record, exit, max_epochs=self.ctx.max_epochs, pruned=pruned, paused=paused)
        self._finish(trial, record, state, failure)

    def _finish(self, trial: optuna.trial.Trial, record: TrialRecord, state: str, failure: Failure | None) -> None:
        trial_dir = self.ctx.workspace.trial_dir(record.trial_id)
        record.finish(state, failure_class=failure.failure_class if failure else None,
                      failure_reason=failure.reason if failure else None)
        record.save(trial_dir)
        with self._study_lock:
            if state == COMPLETED:
                self.study.tell(trial, record.best_value())
            elif state == PRUNED:
                self.study.tell(trial, state=TrialState.PRUNED)
            elif state == FAILED:
                trial.set_user_attr("failure_class", record.failure_class)
                self.study.tell(trial, state=TrialState.FAIL)
            # PAUSED stays RUNNING in storage: `hpo resume` adopts it (or, in a shared study, another worker
            # takes it up once its heartbeat is stale).
        self._release(trial)
        self.guard.trial_finished(record)
        self.observers.trial_finished(record)
        if state == PAUSED:
            log.info("%s paused after %s epochs", record.trial_id, record.epochs_trained())
