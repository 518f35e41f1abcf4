"""The on-disk layout of one sweep and the lock that keeps two drivers out of it.

`<workspace>/<sweep>/` holds everything a sweep needs to be inspected, resumed or promoted:

    sweep.yaml     the resolved sweep config (absolute paths, defaults filled in)
    space.yaml     the compiled search space
    state/         backend state (optuna.db, the Ray experiment folder)
    driver.lock    flock()ed while a driver runs; holds the driver's pid, host and start time
    plan/          the first batch of trial specs, written by `hpo plan`
    trials/<id>/   spec.yaml, status.json, train.log, checkpoints, trial.json
    summary.json   every trial's params, history, state and failure reason; the best trial
    baseline/      evaluation of the base spec's pretrained model, when it has one
    best/          promotion output

The lock is an advisory `fcntl.flock` on `driver.lock`: the kernel drops it when the holder dies, even by
SIGKILL, so a lock file left behind by a killed driver is recognised as stale (flock succeeds) and taken
over, while a live driver's lock is refused with its pid.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skillkit.errors import SweepConfigError
from skillkit.files import (
    BASELINE_DIR,
    BEST_DIR,
    LOCK_FILE,
    SPACE_FILE,
    SUMMARY_FILE,
    SWEEP_FILE,
    TEST_SCORES_FILE,
    TRIAL_FILE,
    TRIALS_DIR,
)


class WorkspaceLockedError(SweepConfigError):
    """Another live driver holds this sweep's lock."""


@dataclass(frozen=True)
class SweepWorkspace:
    """Paths of one sweep folder; creating the object touches nothing on disk."""

    root: Path

    @property
    def sweep_file(self) -> Path:
        return self.root / SWEEP_FILE

    @property
    def space_file(self) -> Path:
        return self.root / SPACE_FILE

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def plan_dir(self) -> Path:
        return self.root / "plan"

    @property
    def trials_dir(self) -> Path:
        return self.root / TRIALS_DIR

    @property
    def summary_file(self) -> Path:
        return self.root / SUMMARY_FILE

    @property
    def test_scores_file(self) -> Path:
        return self.root / TEST_SCORES_FILE

    @property
    def baseline_dir(self) -> Path:
        return self.root / BASELINE_DIR

    @property
    def best_dir(self) -> Path:
        return self.root / BEST_DIR

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def trial_dir(self, trial_id: str) -> Path:
        return self.trials_dir / trial_id

    def create(self) -> SweepWorkspace:
        for folder in (self.root, self.state_dir, self.trials_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def trial_ids(self) -> list[str]:
        if not self.trials_dir.is_dir():
            return []
        return sorted(p.name for p in self.trials_dir.iterdir() if (p / TRIAL_FILE).is_file())


def find_sweep_dir(path: str | Path, name: str | None = None) -> Path:
    """The sweep folder for `hpo resume/status PATH`: PATH itself when it holds sweep.yaml, else the one
    sweep under the workspace PATH (or the one called `name`)."""
    path = Path(path)
    if (path / SWEEP_FILE).is_file():
        return path
    if name and (path / name / SWEEP_FILE).is_file():
        return path / name
    if not path.is_dir():
        raise SweepConfigError(f"'{path}' is neither a sweep folder (with {SWEEP_FILE}) nor a workspace folder.")
    sweeps = sorted(p.name for p in path.iterdir() if (p / SWEEP_FILE).is_file())
    if not sweeps:
        raise SweepConfigError(f"'{path}' holds no sweep: no {SWEEP_FILE} in it or in any folder directly below it.")
    if len(sweeps) > 1:
        raise SweepConfigError(f"workspace '{path}' holds several sweeps ({', '.join(sweeps)}); name one: {path}/<sweep>.")
    return path / sweeps[0]


class DriverLock:
    """Exclusive, non-blocking lock on a sweep folder for the lifetime of one driver.

    Usage: `with DriverLock(ws.lock_file): ...`. `stale_holder` tells, after acquiring, whether a previous
    driver died holding it (its pid, for the log).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None
        self.stale_holder: dict[str, Any] | None = None

    def acquire(self) -> DriverLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _parse_holder(handle.read())
            handle.close()
            who = f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started_at')}" if holder else "another process"
            raise WorkspaceLockedError(
                f"sweep folder '{self.path.parent}' is in use by a running driver ({who}); two drivers never share a "
                "workspace. Wait for it to finish, stop it (Ctrl-C / SIGTERM), or use another workspace."
            ) from None
        handle.seek(0)
        previous = _parse_holder(handle.read())
        if previous and previous.get("pid") and not previous.get("released"):
            self.stale_holder = previous
        handle.seek(0)
        handle.truncate()
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": _dt.datetime.now().isoformat(timespec="seconds")}
        handle.write(json.dumps(record))
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is None:
            return
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps({"released": True, "pid": os.getpid()}))
        self._handle.flush()
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> DriverLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_lock_holder(path: Path) -> dict[str, Any] | None:
    """Who holds the lock now (pid, host, started_at), or None when no live driver holds it."""
    if not path.is_file():
        return None
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            return _parse_holder(handle.read()) or {"pid": None}
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def _parse_holder(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None
