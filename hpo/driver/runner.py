"""The sweep driver: lock the workspace, record the resolved config and space, evaluate the baseline, run the
backend, write summary.json, hand the result to promotion, release the lock.

`run_sweep(config)` starts a sweep; `resume_sweep(sweep_dir)` continues one from its workspace (the config
and the compiled space are read back from sweep.yaml / space.yaml, so a resumed sweep searches exactly the
same space even if the skill's schema changed meanwhile). Both return the summary.json object and raise
`SweepFailedError` when the sweep stopped because every trial failed.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hpo.backends.base import Backend, backend_class
from hpo.driver.baseline import run_baseline
from hpo.driver.context import SweepContext, prepare_sweep
from hpo.driver.guard import ALL_FAILED, INTERRUPTED, SweepGuard
from hpo.driver.join import joined_worker_lock
from hpo.driver.observer import ObserverHub, SweepObserver
from hpo.driver.summary import build_summary, write_summary
from hpo.driver.workspace import DriverLock, SweepWorkspace, find_sweep_dir
from hpo.space import SearchSpace
from hpo.sweep.config import SweepConfig, load_sweep_config
from hpo.trials.record import load_records
from skillkit.errors import ExitCode, SweepConfigError, UserError
from skillkit.files import atomic_write_text

log = logging.getLogger(__name__)


class SweepFailedError(UserError):
    """Every trial of the sweep failed (or one failed on the shared dataset); the message says why."""

    exit_code = ExitCode.SWEEP_FAILED


class SweepInterrupted(UserError):
    exit_code = ExitCode.INTERRUPTED


def make_backend(ctx: SweepContext, observers: ObserverHub, guard: SweepGuard,
                 planned: Sequence[Mapping[str, Any]]) -> Backend:
    """The backend the config names (`hpo.backends.base.BACKENDS`), imported only now."""
    return backend_class(ctx.config.backend)(ctx, observers, guard, planned=planned)


def default_observers(ctx: SweepContext) -> list[SweepObserver]:
    """The tracker from `hpo.tracking` when it is installed and enabled (MLflow parent/child runs)."""
    if not ctx.config.tracking.enabled:
        return []
    try:
        from hpo.tracking import make_sweep_observer
    except ImportError:
        return []
    observer = make_sweep_observer(ctx)
    return [observer] if observer is not None else []


def _install_signal_handlers(on_signal: Any) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, on_signal)
    return previous


def _restore_signal_handlers(previous: Mapping[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _workspace_sync(ctx: SweepContext) -> list[SweepObserver]:
    """For an s3:// workspace: an observer pushing the sweep folder there as the sweep goes (hpo.storage)."""
    if not ctx.config.workspace_uri:
        return []
    from hpo.storage.sweeps import WorkspaceSyncObserver
    from hpo.storage.sync import WorkspaceMirror

    return [WorkspaceSyncObserver(WorkspaceMirror(ctx.workspace.root.parent, ctx.config.workspace_uri), ctx.workspace.root)]


def _checkpoint_retention(ctx: SweepContext) -> list[SweepObserver]:
    """`checkpoints.retention: bounded`: the observer that bounds each trial's checkpoints (hpo.trials.retention)."""
    if ctx.config.checkpoints.retention != "bounded":
        return []
    from hpo.trials.retention import CheckpointRetention

    return [CheckpointRetention(ctx.workspace.trials_dir, keep_last=ctx.config.checkpoints.keep_last,
                                donors=ctx.config.algorithm.scheduler == "pbt")]


def _stage_remote_data(ctx: SweepContext) -> None:
    """Stage `s3://` data sources locally before any trial (hpo.storage); a no-op for local data (which never
    imports boto3: a second of start-up on every local sweep)."""
    if "s3://" not in json.dumps(ctx.base_spec, default=str):
        return
    try:
        from hpo.storage.sweeps import stage_sweep_data
    except ImportError:
        return
    stage_sweep_data(ctx)


def _promote(ctx: SweepContext, summary: Mapping[str, Any]) -> str | None:
    if not ctx.config.promotion_enabled or not summary.get("best"):
        return None
    try:
        from hpo.promotion import promote
    except ImportError:
        return "promotion skipped: hpo.promotion is not installed"
    promote(ctx.workspace.root)
    return None


def resume_command(ctx: SweepContext) -> str:
    """The command that continues this sweep (`--name` only when its workspace may hold others)."""
    if ctx.config.workspace_uri:
        return f"hpo resume {ctx.config.workspace_uri} --name {ctx.workspace.root.name}"
    return f"hpo resume {ctx.workspace.root}"


def execute(
    ctx: SweepContext,
    *,
    observers: Iterable[SweepObserver] = (),
    planned: Sequence[Mapping[str, Any]] = (),
    use_default_observers: bool = True,
) -> dict[str, Any]:
    """Run (or continue) the sweep described by `ctx`; the caller has written sweep.yaml/space.yaml."""
    workspace = ctx.workspace.create()
    guard = SweepGuard(max_consecutive_failures=ctx.config.trial.max_consecutive_failures,
                       time_budget_s=ctx.config.algorithm.time_budget_s, resume_command=resume_command(ctx))
    backend: Any = None

    def on_signal(signum: int, frame: Any) -> None:
        guard.interrupt()
        if backend is not None:
            backend.stop()

    # Installed first, so a Ctrl-C / SIGTERM during set-up also ends in a clean, resumable state.
    previous = _install_signal_handlers(on_signal)
    try:
        # A joined worker (`hpo run --join`) shares the first worker's sweep folder: it holds a lock of its own.
        lock = DriverLock(joined_worker_lock(ctx) if ctx.joined else workspace.lock_file).acquire()
    except BaseException:
        _restore_signal_handlers(previous)
        raise
    try:
        if lock.stale_holder:
            log.warning("took over the lock of driver pid %s, which died without releasing it", lock.stale_holder.get("pid"))
        hub = ObserverHub([*(default_observers(ctx) if use_default_observers else []), *_checkpoint_retention(ctx),
                           *_workspace_sync(ctx), *observers])
        guard.seed_history(load_records(workspace.trials_dir))
        _stage_remote_data(ctx)
        if not ctx.joined:
            run_baseline(ctx)
        backend = make_backend(ctx, hub, guard, planned)
        if not ctx.joined:
            write_summary(ctx, status="running")
        hub.sweep_started(ctx)
        try:
            if guard.reason is None:
                backend.run()
        finally:
            guard.check_time()
            status = "finished" if guard.reason is None else "stopped"
            if ctx.joined:
                # The first worker owns summary.json, the parent run's end and promotion.
                summary = build_summary(ctx, status=status, stop_reason=guard.reason, message=guard.message)
            else:
                summary = write_summary(ctx, status=status, stop_reason=guard.reason, message=guard.message)
                hub.sweep_finished(summary)
        note = None if ctx.joined else _promote(ctx, summary)
        if note:
            ctx.notes.append(note)
        if ctx.workspace.test_scores_file.is_file():  # promotion scored the top-k on the test dataset
            summary = write_summary(ctx, status=status, stop_reason=guard.reason, message=guard.message)
    finally:
        _restore_signal_handlers(previous)
        lock.release()
    if guard.reason == ALL_FAILED:
        raise SweepFailedError(guard.message or "every trial failed")
    if guard.reason == INTERRUPTED:
        raise SweepInterrupted(guard.message or "interrupted")
    return summary


def refuse_existing_sweep(ctx: SweepContext) -> None:
    """Refuse to start a sweep over a folder that already holds one (with trials)."""
    workspace = ctx.workspace
    if workspace.sweep_file.is_file() and workspace.trial_ids():
        raise SweepConfigError(
            f"sweep folder '{workspace.root}' already holds a sweep with {len(workspace.trial_ids())} trial(s); continue it "
            f"with `hpo resume {workspace.root}`, or give this sweep another name."
        )


def start_workspace(ctx: SweepContext) -> None:
    """Record the resolved config and the compiled space; refuse to start over an existing sweep."""
    refuse_existing_sweep(ctx)
    workspace = ctx.workspace
    workspace.create()
    atomic_write_text(workspace.sweep_file, yaml.safe_dump(ctx.config.to_dict(), sort_keys=False))
    atomic_write_text(workspace.space_file, ctx.space.to_yaml())


def run_sweep(config: SweepConfig | str | Path, *, observers: Iterable[SweepObserver] = (),
              planned: Sequence[Mapping[str, Any]] = (), use_default_observers: bool = True) -> dict[str, Any]:
    if not isinstance(config, SweepConfig):
        config = load_sweep_config(config)
    ctx = prepare_sweep(config)
    start_workspace(ctx)
    return execute(ctx, observers=observers, planned=planned, use_default_observers=use_default_observers)


def load_workspace_context(sweep_dir: str | Path, *, name: str | None = None,
                           time_budget_s: float | None = None) -> SweepContext:
    """The context of an existing sweep, from its sweep.yaml and space.yaml.

    `time_budget_s` replaces the config's per-run budget for this run (0: no budget)."""
    from dataclasses import replace

    if "://" in str(sweep_dir):
        # A sweep kept in an s3:// workspace: restore it into the local mirror first (any machine).
        from hpo.storage.sweeps import open_workspace, pull_sweep

        if not name:
            raise SweepConfigError(f"resuming from {sweep_dir} needs the sweep's name (--name).")
        _, mirror = open_workspace(str(sweep_dir))
        assert mirror is not None  # an s3:// workspace always has one
        sweep_dir = pull_sweep(mirror, name)
    root = find_sweep_dir(sweep_dir, name)
    workspace = SweepWorkspace(root)
    config = load_sweep_config(workspace.sweep_file)
    if config.sweep_dir.resolve() != root.resolve():
        # The workspace was moved (or restored elsewhere): its own location wins over the recorded one.
        config = replace(config, workspace=root.parent.resolve(), name=root.name)
    if time_budget_s is not None:
        config = replace(config, algorithm=replace(config.algorithm, time_budget_s=time_budget_s or None))
    space = SearchSpace.from_yaml(workspace.space_file.read_text()) if workspace.space_file.is_file() else None
    return prepare_sweep(config, resumed=True, space=space)


def resume_sweep(sweep_dir: str | Path, *, name: str | None = None, observers: Iterable[SweepObserver] = (),
                 use_default_observers: bool = True, time_budget_s: float | None = None) -> dict[str, Any]:
    """Continue a sweep: paused and interrupted trials go on from their checkpoints, the remaining budget runs.
    `algorithm.time_budget_s` bounds each driver run; pass `time_budget_s` to change it for this run."""
    from hpo.driver.plan import planned_points

    ctx = load_workspace_context(sweep_dir, name=name, time_budget_s=time_budget_s)
    return execute(ctx, observers=observers, planned=planned_points(ctx.workspace.plan_dir),
                   use_default_observers=use_default_observers)
