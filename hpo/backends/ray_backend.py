"""Ray Tune backend: schedulers (ASHA, synchronous HyperBand with pause/resume, BOHB, PBT, median, FIFO) and
searchers over the compiled space, trials as `HpoTrainable` actors with per-trial CPU/GPU resources
(fractional GPUs allowed), experiment state in `<sweep>/state/ray/experiment` for `Tuner.restore` — or, with
`ray.storage: s3://...` (nodes without a shared filesystem), in `<ray.storage>/<sweep>/experiment`, through
which trial checkpoints travel too (`hpo.backends.ray_storage`).

Which scheduler and searcher an algorithm gets is looked up in `hpo.backends.algorithms`. Searchers:
random/tpe/bayesian/cmaes/grid/bfbo/dehb/mfbo → `SpaceSearcher` (the compiled space's define-by-run sampling
through an Optuna study that receives PRUNED, not COMPLETE, for scheduler-stopped trials — the flaw fix);
bohb → `SpaceBOHB` (Ray's `TuneBOHB` on the space's static form, `ray_bohb.py`) with `HyperBandForBOHB`
(BOHB models each budget separately, so a partial result is fed as exactly that); dehb → differential-
evolution proposals (`de_sampler.py`) with synchronous HyperBand, whose promoted trials resume from their own
checkpoints; hyperband_es → synchronous HyperBand plus learning-curve stopping (`curve_stop.py`); pbt → Ray's variant
generator (PBT refuses searchers) drawing whole configurations from the space, with `space.perturb` as the
explore step. PBT's space holds hot parameters only (`hpo.driver.compatibility`): nothing it perturbs can
change a checkpoint's shapes. `planned` are static points (`hpo.space.static`), the plan's first batch.

The scheduler's time attribute is `epochs_trained` (a count; a result's `epoch` is TAO's 0-based index),
so grace periods, rungs and perturbation intervals are in epochs even when a trainer validates less often
or a trial was restored.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from hpo.backends import algorithms
from hpo.driver.context import SweepContext
from hpo.driver.guard import SweepGuard
from hpo.driver.observer import ObserverHub
from hpo.space import SearchSpace
from hpo.sweep.config import AlgorithmConfig

log = logging.getLogger(__name__)

EXPERIMENT_NAME = "experiment"
# Synchronous HyperBand (and BOHB) must create every trial of a bracket up front and park them PAUSED, which
# Ray's concurrency limiter forbids (it counts paused trials as live, so brackets never fill). For those
# schedulers `max_concurrent` is enforced by a custom resource instead: one slot per running trial.
SLOT_RESOURCE = "hpo_trial_slot"
# Ray snapshots its experiment state at most this often (and copies it into the workspace, see SyncConfig
# below); a driver killed in between loses at most this much of Ray's bookkeeping, never results: those are
# in each trial's status.json and replayed on restore. A trial Ray had not yet recorded was recorded by the
# engine when proposed and is re-attached on restore (SpaceSearcher.suggest); only under PBT and BOHB, whose
# searchers are Ray's, is such a trial settled as FAILED (killed) with its results kept and replaced.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Frequent snapshots are intended (see above); Ray would warn about them every few seconds.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")



class SpaceSampler:
    """`tune.sample_from` callable drawing a whole configuration (conditional spaces included) for PBT."""

    def __init__(self, space: SearchSpace, seed: int, epoch_budget: int, *, skip: int = 0) -> None:
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.epoch_budget = epoch_budget
        for _ in range(skip):  # the plan's first batch came from this same stream: continue after it
            space.sample(self.rng, epoch_budget=epoch_budget)

    def __call__(self, spec: Any) -> str:
        from hpo.backends.ray_trainable import pack_params

        return pack_params(self.space.sample(self.rng, epoch_budget=self.epoch_budget))


class PbtExplorer:
    """PBT explore: perturb the exploited configuration inside the space's bounds and conditions."""

    def __init__(self, space: SearchSpace, seed: int, factor: float, resample_probability: float) -> None:
        self.space = space
        self.rng = np.random.default_rng(seed + 1)
        self.factor = factor
        self.resample_probability = resample_probability

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        from hpo.backends.ray_trainable import PBT_PARAMS_KEY, pack_params, params_of

        new = self.space.perturb(params_of(config), self.rng, factor=self.factor,
                                 resample_probability=self.resample_probability)
        return {**config, PBT_PARAMS_KEY: pack_params(new)}


def make_scheduler(algorithm: AlgorithmConfig, *, max_epochs: int, space: SearchSpace, seed: int) -> Any:
    """The Ray Tune scheduler for a resolved algorithm (`hpo.backends.algorithms.SCHEDULERS`; `RayBackend` and
    the search-efficiency benchmark's simulator both build it here). Its time attribute is `epochs_trained`;
    metric and mode come later (TuneConfig, or `set_search_properties`)."""
    return algorithms.ray_scheduler(algorithm, max_epochs=max_epochs, space=space, seed=seed)


def pending_trials(scheduler: Any, max_trials: int) -> int:
    """How many trials Ray may create ahead of running them under synchronous HyperBand: its largest bracket
    (all of a bracket's trials must exist before it can halve). Not the whole budget: a trial is proposed
    when it is created, and trials created after the first results come from a model-based searcher's model
    (dehb, bfbo, tpe...) instead of all being drawn before anything is known."""
    sizes = [scheduler._get_n0(s) for s in range(int(getattr(scheduler, "_s_max_1", 1)))]
    return max(1, min(max_trials, max(sizes, default=max_trials)))


def experiment_path(ctx: SweepContext) -> Path:
    return ctx.workspace.state_dir / "ray" / EXPERIMENT_NAME


def experiment_location(ctx: SweepContext) -> tuple[str, Any]:
    """(Ray's experiment path, its pyarrow filesystem): the workspace's state/ray/experiment (filesystem None:
    a local path), or `<ray.storage>/<sweep>/experiment` on the storage's S3 filesystem, checked writable."""
    from hpo.backends.ray_storage import cluster_storage

    storage = cluster_storage(ctx)
    if storage is None:
        return str(experiment_path(ctx)), None
    filesystem = storage.filesystem()
    storage.check(filesystem)
    return f"{storage.storage_path}/{EXPERIMENT_NAME}", filesystem


def _restorable(path: str, filesystem: Any = None) -> bool:
    """Whether Ray saved an experiment to restore at `path`. A driver killed while Ray was starting can
    leave the folder and tuner.pkl without any experiment state; that folder is removed and the run starts
    afresh (trials it had proposed are in the searcher's study and are re-attached, SpaceSearcher.suggest)."""
    import pyarrow.fs
    from ray import tune

    fs = filesystem or pyarrow.fs.LocalFileSystem()
    listing = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    states = [i for i in listing if i.base_name.startswith("experiment_state-") and i.base_name.endswith(".json")]
    if states and tune.Tuner.can_restore(path, storage_filesystem=filesystem):
        return True
    if fs.get_file_info(path).type == pyarrow.fs.FileType.Directory:
        fs.delete_dir(path)
    return False


def cluster_note(address: str, nodes: list[dict[str, Any]], resources: Any) -> str:
    """One line on the joined cluster: its live nodes, their CPUs/GPUs, and how many trials fit at once."""
    alive = [n for n in nodes if n.get("Alive")]
    cpus = sum(n.get("Resources", {}).get("CPU", 0.0) for n in alive)
    gpus = sum(n.get("Resources", {}).get("GPU", 0.0) for n in alive)
    fit = [cpus / resources.cpus_per_trial] + ([gpus / resources.gpus_per_trial] if resources.gpus_per_trial else [])
    slots = min(int(min(fit)), resources.max_concurrent)
    return (f"joined the Ray cluster at {address}: {len(alive)} node(s), {cpus:g} CPUs, {gpus:g} GPUs; up to "
            f"{slots} trial(s) at once (resources.max_concurrent {resources.max_concurrent})")


@contextmanager
def _keep_sigterm_handler() -> Iterator[None]:
    """`ray.init` installs a SIGTERM handler that exits the driver at once (SystemExit mid-start-up, with
    summary.json left behind as if the sweep had ended). Keep the sweep's own graceful handler instead."""
    import ray._private.utils as ray_utils

    original = ray_utils.set_sigterm_handler
    ray_utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        ray_utils.set_sigterm_handler = original


class RayBackend:
    def __init__(self, ctx: SweepContext, observers: ObserverHub, guard: SweepGuard,
                 planned: Sequence[Mapping[str, Any]] = ()) -> None:
        self.ctx = ctx
        self.observers = observers
        self.guard = guard
        self.planned = [dict(p) for p in planned]
        self.mode = "max" if ctx.direction == "maximize" else "min"
        self._started_ray = False
        self._fitting = False

    # -- pieces --------------------------------------------------------------------------------------------
    def scheduler(self) -> Any:
        return make_scheduler(self.ctx.config.algorithm, max_epochs=self.ctx.max_epochs, space=self.ctx.space,
                              seed=self.ctx.config.seed)

    def search(self) -> tuple[Any, dict[str, Any]]:
        """(search_alg or None, param_space): the scheduler's own proposals (PBT) or the sampler's searcher."""
        return algorithms.ray_search(self.ctx, self.planned, self.mode)

    def num_samples(self) -> int:
        """The trial budget; a grid sweep never asks for more trials than its grid has points."""
        return algorithms.trial_budget(self.ctx.config.algorithm, self.ctx.space, self.ctx.max_epochs)

    @property
    def synchronous(self) -> bool:
        return algorithms.synchronous(self.ctx.config.algorithm)

    def trainable(self) -> Any:
        import ray
        from ray import tune

        from hpo.backends.ray_trainable import HpoTrainable

        resources = self.ctx.config.resources
        request: dict[str, float] = {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial}
        if self.synchronous:
            if ray.cluster_resources().get(SLOT_RESOURCE):
                request[SLOT_RESOURCE] = 1
            else:
                self.ctx.notes.append(
                    f"the Ray cluster offers no '{SLOT_RESOURCE}' resource, so resources.max_concurrent is not enforced "
                    "for synchronous HyperBand/BOHB; running trials are bounded by per-trial cpus/gpus only."
                )
        return tune.with_resources(tune.with_parameters(HpoTrainable, ctx=self.ctx), request)

    def checkpoint_config(self) -> Any:
        """A Ray checkpoint after every result. With a shared workspace it is a pointer into the trial folder:
        Ray keeps the 4 newest (PBT hands an exploiting trial its donor's latest) and the engine's own
        retention bounds the files (`hpo.trials.retention`). Under `ray.storage` it carries the trainer
        checkpoint, so Ray's retention is the disk rule: each trial's best-so-far by the engine's rule (ranked
        by `KEEP_RANK_KEY`, see `ray_storage.keep_rank`) and always its latest (resume, restarts on another
        node, paused trials); `checkpoints.keep_last` > 1 keeps that many of its most recent best-so-far ones.
        PBT keeps the best `keep_last + 1` by the metric and the latest (an exploiting trial may be handed a
        donor's checkpoint from its last perturbation, older than its latest). All of them with
        `checkpoints.retention: keep_all`."""
        from ray import tune

        from hpo.backends.ray_storage import KEEP_RANK_KEY, cluster_storage

        if cluster_storage(self.ctx) is None:
            return tune.CheckpointConfig(checkpoint_frequency=1, num_to_keep=4)
        checkpoints = self.ctx.config.checkpoints
        if checkpoints.retention == "keep_all":
            return tune.CheckpointConfig(checkpoint_frequency=1, num_to_keep=None)
        if self.ctx.config.algorithm.scheduler == "pbt":
            return tune.CheckpointConfig(checkpoint_frequency=1, num_to_keep=checkpoints.keep_last + 1,
                                         checkpoint_score_attribute=self.ctx.metric, checkpoint_score_order=self.mode)
        return tune.CheckpointConfig(checkpoint_frequency=1, num_to_keep=max(1, checkpoints.keep_last),
                                     checkpoint_score_attribute=KEEP_RANK_KEY, checkpoint_score_order="max")

    # -- run -----------------------------------------------------------------------------------------------
    def _ensure_ray(self) -> None:
        """Join the cluster the sweep names (`ray.address`, else RAY_ADDRESS), or start a Ray of the sweep's
        own on this machine. A joined cluster is never handed `resources` (Ray refuses them when connecting):
        trials are placed by the cluster's own CPUs/GPUs, so trial slots are what its nodes offer."""
        import ray

        if ray.is_initialized():
            return
        address = self.ctx.config.ray.address or os.environ.get("RAY_ADDRESS") or None
        with _keep_sigterm_handler():
            if address is None:
                # "local": never attach silently to a cluster someone started on this machine.
                ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False,
                         resources={SLOT_RESOURCE: float(self.ctx.config.resources.max_concurrent)})
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        self._started_ray = True
        if address is not None:
            note = cluster_note(address, ray.nodes(), self.ctx.config.resources)
            self.ctx.notes.append(note)
            log.warning("%s", note)  # said on the console: where the trials of this sweep will run

    def _own_sigterm(self) -> Any:
        """`ray.init` replaces the driver's SIGTERM handler with one that exits at once; put back a graceful
        one (pause the trials, keep the experiment resumable). Returns the handler to restore."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return None

        def on_sigterm(signum: int, frame: Any) -> None:
            self.guard.interrupt()
            self.stop()

        return signal.signal(signal.SIGTERM, on_sigterm)

    def stop(self) -> None:
        """Ask Ray to end the run gracefully (its SIGUSR1 handler), leaving trials resumable. Before `fit()`
        the guard (already told) keeps the run from starting; SIGUSR1 would kill a process without Tune's
        handler, so it is sent only while fitting (and `GuardStopper` sends it again from inside fit)."""
        if self._fitting and hasattr(signal, "SIGUSR1"):
            os.kill(os.getpid(), signal.SIGUSR1)

    def run(self) -> None:
        from ray import tune

        from hpo.backends.ray_callbacks import GuardStopper, RayRecordKeeper, RecordCallback

        self._ensure_ray()
        previous_sigterm = self._own_sigterm()
        # Ray's fit() installs SIGINT/SIGUSR1 handlers and leaves them behind; they are put back afterwards.
        saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, getattr(signal, "SIGUSR1", None)) if signum}
        scheduler = self.scheduler()
        # One step() per remote call: with buffering Ray would thaw a trainer for several epochs before the
        # scheduler sees the first of them, and drop the results after a STOP decision. Ray already forces
        # this for schedulers that cannot take buffered results (and warns when the variable is set).
        if scheduler.supports_buffered_results:
            os.environ["TUNE_RESULT_BUFFER_LENGTH"] = "1"
        if self.synchronous:
            # Ray creates one pending trial at a time for a searcher; a synchronous bracket needs all of them.
            os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(pending_trials(scheduler, self.ctx.config.algorithm.max_trials))
        keeper = RayRecordKeeper(self.ctx, self.observers, self.guard)
        key = keeper.register()
        try:
            path, filesystem = experiment_location(self.ctx)
            if _restorable(path, filesystem):
                tuner = tune.Tuner.restore(path, self.trainable(), resume_unfinished=True, resume_errored=False,
                                           restart_errored=False, storage_filesystem=filesystem)
            else:
                search_alg, param_space = self.search()
                resources = self.ctx.config.resources
                tuner = tune.Tuner(
                    self.trainable(),
                    param_space=param_space,
                    tune_config=tune.TuneConfig(
                        metric=self.ctx.metric, mode=self.mode, search_alg=search_alg, scheduler=scheduler,
                        num_samples=self.num_samples(),
                        max_concurrent_trials=None if self.synchronous else resources.max_concurrent,
                        reuse_actors=True,
                    ),
                    run_config=tune.RunConfig(
                        name=EXPERIMENT_NAME, storage_path=path.rsplit("/", 1)[0], storage_filesystem=filesystem,
                        callbacks=[RecordCallback(key)], stop=GuardStopper(key), verbose=0,
                        # Ray stages its experiment state on the driver and copies it into the workspace (or the
                        # storage) every sync_period (default 300 s); every second keeps `hpo resume` close to
                        # the truth.
                        sync_config=tune.SyncConfig(sync_period=1),
                        checkpoint_config=self.checkpoint_config(),
                        # A trial whose actor died (its node was lost) is restarted from its last checkpoint on
                        # a node still alive; trainer failures are not retried (HpoTrainable._begin).
                        failure_config=tune.FailureConfig(max_failures=self.ctx.config.ray.max_failures),
                    ),
                )
            if self.guard.stopped:  # interrupted while Ray was starting: nothing ran, nothing to settle
                return
            if hasattr(signal, "SIGUSR1"):  # until Tune installs its own: never die of our stop request
                signal.signal(signal.SIGUSR1, lambda signum, frame: None)
            self._fitting = True
            try:
                tuner.fit()
            finally:
                self._fitting = False
            # Records still RUNNING after fit() belong to trials Ray left unfinished: it was interrupted.
            if keeper.unfinished() and self.guard.reason is None and not self.guard.stopped:
                self.guard.interrupt()
            keeper.settle()
        finally:
            if previous_sigterm is not None:
                signal.signal(signal.SIGTERM, previous_sigterm)
                for signum, handler in saved.items():
                    signal.signal(signum, handler)
            os.environ.pop("TUNE_MAX_PENDING_TRIALS_PG", None)
            os.environ.pop("TUNE_RESULT_BUFFER_LENGTH", None)
            keeper.unregister()
            if self._started_ray:
                import ray

                ray.shutdown()
