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
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Mapping, Sequence

import optuna
from optuna.trial import TrialState

from hpo.backends.optuna_factory import grid_size, grid_values, make_pruner, make_sampler, make_storage, storage_url
from hpo.sweep.context import SweepContext, plain
from hpo.sweep.guard import SweepGuard
from hpo.sweep.observer import ObserverHub
from hpo.trials.failures import Failure
from hpo.trials.lifecycle import build_process, final_state, ingest_status, record_validation, resume_point
from hpo.trials.record import COMPLETED, FAILED, PAUSED, PRUNED, TrialRecord
from hpo.trials.resources import GpuPool, detect_gpus
from hpo.trials.runner import stop_orphaned_trainer
from skillkit.checkpoints import epochs_trained

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)

TRIAL_ID_ATTR = "hpo_trial_id"
WORKER_ATTR = "hpo_worker"


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
        self.study = self._open_study()
        self.max_trials = self.algorithm.max_trials
        if self.algorithm.sampler == "grid":
            self.max_trials = min(self.max_trials, grid_size(grid_values(ctx.space, self.algorithm.grid_points)))
        self.gpus = GpuPool(detect_gpus(ctx.config.resources.gpus), ctx.config.resources.gpus_per_trial)
        if planned and not self.study.get_trials(deepcopy=False):
            # The plan's first batch runs exactly as shown by `hpo plan`.
            for params in planned:
                self.study.enqueue_trial(dict(params), skip_if_exists=True)

    # -- study ---------------------------------------------------------------------------------------------
    def _open_study(self) -> optuna.Study:
        storage = make_storage(self.storage_url)
        direction = "maximize" if self.ctx.direction == "maximize" else "minimize"
        study = optuna.create_study(
            study_name=self.ctx.config.name, storage=storage, direction=direction, load_if_exists=True,
            sampler=make_sampler(self.algorithm, self.ctx.space, self.ctx.config.seed),
            pruner=make_pruner(self.algorithm, self.ctx.max_epochs),
        )
        study.set_user_attr("metric", self.ctx.metric)
        return study

    def _counted_trials(self) -> int:
        """Trials that use the budget: all but WAITING ones (from any worker sharing the study)."""
        with self._study_lock:
            return len([t for t in self.study.get_trials(deepcopy=False) if t.state != TrialState.WAITING])

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
                    break
                done, _ = wait(list(running), timeout=0.25, return_when=FIRST_COMPLETED)
                for future in done:
                    trial_id = running.pop(future)
                    self.gpus.release(trial_id)
                    future.result()  # re-raise engine bugs (never trainer failures, which are states)

    def _ask(self) -> tuple[optuna.trial.Trial, TrialRecord, Path | None] | None:
        if self._counted_trials() >= self.max_trials:
            return None
        with self._study_lock:
            trial = self.study.ask()
            params = plain(self.ctx.space.suggest(trial, epoch_budget=self.ctx.max_epochs))
            trial_id = trial_id_for(trial.number)
            trial.set_user_attr(TRIAL_ID_ATTR, trial_id)
            trial.set_user_attr(WORKER_ATTR, self.ctx.worker_id)
        record = TrialRecord(trial_id=trial_id, number=trial.number, params=params, metric=self.ctx.metric,
                             direction=self.ctx.direction)
        return trial, record, None

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
            trial_dir = self.ctx.workspace.trial_dir(trial_id)
            if stop_orphaned_trainer(trial_dir, grace_s=self.ctx.config.trial.stop_grace_s):
                log.warning("stopped trainer of %s left running by the previous driver", trial_id)
            trial = optuna.trial.Trial(self.study, ft._trial_id)
            record = self._load_or_create_record(trial_dir, trial_id, trial)
            ingest_status(record, trial_dir)
            with self._study_lock:
                self._report_new(trial, record, set(ft.intermediate_values))
            record.reopen()
            record.save(trial_dir)
            if record.epochs_trained() >= self.ctx.max_epochs:
                self._finish(trial, record, COMPLETED, None)
                continue
            point = resume_point(trial_dir, [(e["epoch"], e.get("step")) for e in record.history])
            jobs.append((trial, record, point.path if point else None))
        return jobs

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

    def _report_new(self, trial: optuna.trial.Trial, record: TrialRecord, stored: set[int]) -> None:
        """Report the record's validations the study lacks; Optuna's step is the epochs trained (the
        resource its pruners count), not TAO's 0-based epoch index."""
        for epoch, value in record.metric_values():
            step = epochs_trained(epoch)
            if step not in stored:
                trial.report(value, step)
                stored.add(step)

    # -- one trial (runs in a pool thread) -----------------------------------------------------------------
    def _drive(self, trial: optuna.trial.Trial, record: TrialRecord, resume_from: Path | None, cuda: str) -> None:
        trial_dir = self.ctx.workspace.trial_dir(record.trial_id)
        trial_dir.mkdir(parents=True, exist_ok=True)
        record.resources = {"cpus": self.ctx.config.resources.cpus_per_trial,
                            "gpus": self.ctx.config.resources.gpus_per_trial, "cuda_visible_devices": cuda}
        record.reopen()
        process = build_process(self.ctx, record, trial_dir, resume_from=resume_from, cuda_visible_devices=cuda)
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
                should_prune = validation.epochs_trained < self.ctx.max_epochs and trial.should_prune()
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
            # PAUSED stays RUNNING in storage: `hpo resume` adopts it.
        self.guard.trial_finished(record)
        self.observers.trial_finished(record)
        if state == PAUSED:
            log.info("%s paused after %s epochs", record.trial_id, record.epochs_trained())
