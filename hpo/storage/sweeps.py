"""What the sweep driver calls to run on S3: stage data before trials, mirror the workspace while it runs.

The driver (`hpo.driver`) owns the sweep; this module adds three steps to it, each a single call:

1. `stage_sweep_data(ctx)` after `prepare_sweep` and before any trial (also on resume, since another
   machine has another cache): every `s3://` data source of `ctx.base_spec` is staged
   (`stage_spec_sources`), `ctx.base_spec` is replaced by the spec with local paths, and
   `<sweep dir>/data_staging.json` records what was staged. A missing object, denied access or a corrupt
   archive raises here, before the first trial. Trials' spec files therefore hold local paths, while
   `sweep.yaml` keeps the `s3://` URIs, so a resume elsewhere stages again from the source. The spec before
   staging stays in `ctx.remote_base_spec`: Ray nodes without the driver's disk (`ray.storage`) stage it
   again on their own (`hpo.backends.ray_storage.stage_on_this_node`).
2. `WorkspaceSyncObserver(mirror, sweep_dir)` in the driver's observers: pushes the sweep's files to the
   `s3://` workspace as the sweep goes (config and space at start, a trial's folder at every validation
   and at its end, everything including `summary.json` and `best/` at the end).
3. `open_workspace(uri)` turns a workspace setting into (local folder, mirror or None), and
   `pull_sweep(mirror, name)` restores a sweep folder from S3 into a fresh local folder before
   `resume_sweep`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.driver.observer import SweepObserver
from hpo.storage.router import Storage
from hpo.storage.staging import StagingReport, collect_s3_sources, data_paths_for, stage_spec_sources
from hpo.storage.sync import WorkspaceMirror, default_mirror_dir
from hpo.storage.uri import is_s3_uri
from skillkit.errors import StorageError
from skillkit.files import TRIALS_DIR

if TYPE_CHECKING:
    from hpo.driver.context import SweepContext
    from hpo.trials.record import TrialRecord

logger = logging.getLogger(__name__)


def stage_sweep_data(
    ctx: SweepContext,
    *,
    storage: Storage | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> StagingReport | None:
    """Stage the `s3://` data of `ctx.base_spec` and point `ctx.base_spec` at the local copies.

    Returns None (and writes nothing) when the spec has no `s3://` data. Raises `StorageError` /
    `DataError` before any trial when a source cannot be staged.
    """
    keys = data_paths_for(ctx.skill.info, ctx.config.action)
    if not collect_s3_sources(ctx.base_spec, keys):
        return None
    report = stage_spec_sources(
        ctx.base_spec, data_paths=keys, cache_dir=cache_dir, workspace=ctx.workspace.root, storage=storage
    )
    ctx.remote_base_spec = ctx.base_spec
    ctx.base_spec = report.spec
    logger.info(
        "staged %d data source(s) in %.1fs (%d from the cache)",
        len(report.sources), report.seconds, sum(source.cache_hit for source in report.sources),
    )
    return report


def open_workspace(
    workspace: str | os.PathLike, *, local_dir: str | os.PathLike | None = None, storage: Storage | None = None
) -> tuple[Path, WorkspaceMirror | None]:
    """(local workspace folder, mirror) for an `s3://` workspace; (the folder, None) for a local one.

    The local folder of a remote workspace is `local_dir`, else `default_mirror_dir(uri)`.
    """
    if not is_s3_uri(workspace):
        return Path(workspace).expanduser(), None
    uri = str(workspace)
    local = Path(local_dir).expanduser() if local_dir is not None else default_mirror_dir(uri)
    return local, WorkspaceMirror(local, uri, storage=storage)


def pull_sweep(mirror: WorkspaceMirror, sweep_name: str) -> Path:
    """Restore `<remote>/<sweep_name>/` into the mirror's local folder; returns the local sweep folder."""
    report = mirror.pull([sweep_name])
    sweep_dir = mirror.local_dir / sweep_name
    if not (sweep_dir / "sweep.yaml").is_file():
        raise StorageError(
            f"cannot resume from {mirror.remote_uri}/{sweep_name}: no sweep.yaml is stored there "
            f"(pulled {report.transferred} file(s)); check the workspace URI and the sweep name."
        )
    return sweep_dir


class WorkspaceSyncObserver(SweepObserver):
    """Pushes a sweep folder to its `s3://` workspace as the sweep progresses.

    Uploads are incremental (only files changed since the last push), so pushing a trial folder at every
    validation costs one checkpoint, `status.json` and `trial.json`. A failed push is logged and retried
    at the next event (the sweep goes on: trials are not lost locally); the final push at `sweep_finished`
    catches up on everything.
    """

    def __init__(self, mirror: WorkspaceMirror, sweep_dir: str | os.PathLike) -> None:
        self.mirror = mirror
        sweep_dir = Path(sweep_dir)
        try:
            self.sweep = sweep_dir.resolve().relative_to(mirror.local_dir.resolve()).as_posix()
        except ValueError:
            raise StorageError(
                f"the sweep folder {sweep_dir} is not inside the mirrored workspace {mirror.local_dir}."
            ) from None

    def _push(self, *relative: str) -> None:
        self.mirror.push([f"{self.sweep}/{path}" if path else self.sweep for path in relative])

    def sweep_started(self, sweep: SweepContext) -> None:
        self._push("")

    def trial_reported(self, trial_record: TrialRecord, report: Mapping[str, Any]) -> None:
        self._push(f"{TRIALS_DIR}/{trial_record.trial_id}", "state")

    def trial_finished(self, trial_record: TrialRecord) -> None:
        self._push(f"{TRIALS_DIR}/{trial_record.trial_id}", "state")

    def sweep_finished(self, summary: Mapping[str, Any]) -> None:
        self._push("")
