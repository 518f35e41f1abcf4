"""`hpo run SWEEP.yaml --join`: one more worker for a sweep whose first worker (`hpo run SWEEP.yaml`) runs
elsewhere, sharing its Optuna study in PostgreSQL and its workspace folder.

What a joined worker needs, checked before it runs anything:
- backend optuna with a PostgreSQL `storage` (the study every worker asks from and tells to);
- the first worker's sweep folder at the same path (a shared filesystem such as NFS, EFS or Lustre): it reads
  the recorded sweep.yaml and space.yaml from there, so every worker searches exactly the same space, and
  writes its trials there, so any worker can continue a trial whose worker died from its checkpoint, and the
  first worker can summarise and promote the whole sweep. It waits up to `wait_s` for the first worker to
  create that folder, so all workers may be started at once (a SLURM array, a Kubernetes Job);
- the same algorithm, metric, storage, search space and seed as the recorded sweep (else it would corrupt
  the shared study).

A joined worker has a worker id of its own (host, pid and a random suffix, or `--worker-id`), holds its own
lock under state/workers/, skips the baseline, and leaves summary.json, the MLflow parent run's end and
promotion to the first worker (its trials are logged as child runs of the same parent run through the shared
tracking journal). It ends when the budget is spent; the first worker ends once no trial runs anywhere.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.driver.workspace import SweepWorkspace
from hpo.sweep.config import SweepConfig
from skillkit.errors import SweepConfigError

if TYPE_CHECKING:
    from hpo.driver.context import SweepContext

MUST_MATCH = ("backend", "storage", "algorithm", "metric", "direction", "search_space", "seed")
WORKERS_DIR = "workers"


def joined_worker_lock(ctx: SweepContext) -> Path:
    """The lock file a joined worker holds for its lifetime (state/workers/<worker id>.lock)."""
    return ctx.workspace.state_dir / WORKERS_DIR / f"{ctx.worker_id}.lock"


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def join_sweep_context(config: SweepConfig, *, worker_id: str | None = None, wait_s: float = 600.0,
                       poll_s: float = 1.0) -> SweepContext:
    """The context of a joined worker of `config`'s sweep (see the module docstring); raises
    SweepConfigError naming what is missing."""
    from hpo.backends.optuna_workers import is_shared_storage
    from hpo.driver.runner import load_workspace_context

    if config.backend != "optuna" or not is_shared_storage(config.storage):
        raise SweepConfigError(
            f"--join needs backend optuna with a PostgreSQL storage shared by every worker (storage: "
            f"postgresql://user@host:5432/db); sweep config '{config.source}' has backend {config.backend!r} and "
            f"storage {'set to a non-PostgreSQL URL' if config.storage else 'unset (a SQLite file of one worker)'}."
        )
    if config.workspace_uri:
        raise SweepConfigError(
            f"--join needs the workspace on a filesystem every worker mounts at the same path (NFS, EFS, Lustre); "
            f"an s3:// workspace ({config.workspace_uri}) is mirrored per machine, so workers could not continue "
            "each other's trials from their checkpoints."
        )
    workspace = SweepWorkspace(config.sweep_dir)
    deadline = time.monotonic() + wait_s
    while not (workspace.sweep_file.is_file() and workspace.space_file.is_file()):
        if time.monotonic() >= deadline:
            raise SweepConfigError(
                f"no sweep '{config.name}' to join: {workspace.sweep_file} did not appear within {wait_s:g} s. Start the "
                f"first worker with `hpo run {config.source}` (without --join), and make sure this machine mounts the "
                f"shared workspace at {config.workspace}."
            )
        time.sleep(poll_s)
    ctx = load_workspace_context(workspace.root)
    differing = [key for key in MUST_MATCH if ctx.config.raw.get(key) != config.raw.get(key)]
    if differing:
        raise SweepConfigError(
            f"sweep config '{config.source}' differs from the sweep it joins ({workspace.sweep_file}) in "
            f"{', '.join(differing)}; every worker must run the same sweep. Use the same file on every machine."
        )
    ctx.joined = True
    ctx.joined_worker_id = worker_id or new_worker_id()
    return ctx
