"""SQLite database files that exist complete or not at all.

Optuna and MLflow both create their SQLite schema one statement at a time: Python's sqlite3 driver commits
each CREATE on its own, and MLflow's migrations are a chain of separate steps. A process killed part-way
through (a driver hit by SIGKILL or Ctrl-C in its first seconds) leaves a file that opens but is wrong:

- Optuna: the `studies` table without its unique index on `study_name`. Every later
  `create_study(load_if_exists=True)` then inserts a second study of the same name, and the next lookup fails
  ("An exception is raised during the commit"), so the sweep can never be resumed.
- MLflow: tables of a half-applied migration ("duplicate column name: creation_time", "table scorers already
  exists"), so the tracking store never opens again.

`create_complete` therefore builds a new database in a private file beside the target and moves it into
place with one hard link, which never replaces a file that is already there: the target either does not exist
or holds the whole schema. A builder killed part-way leaves only its private file, removed by the next
creator on the same host once its process is gone.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

SQLITE_PREFIX = "sqlite:///"
_PRIVATE_SUFFIX = ".creating"


def sqlite_file(url: str) -> Path | None:
    """The file a `sqlite:///` URL names (SQLAlchemy's form: a fourth slash makes it absolute); None for
    other URLs and for in-memory databases."""
    if not url.startswith(SQLITE_PREFIX):
        return None
    path = url[len(SQLITE_PREFIX):].split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path)


def create_complete(path: Path, build: Callable[[str], None]) -> bool:
    """Make sure `path` exists with a complete schema: if it does not exist yet, `build(url)` creates the
    schema in a private file (url is its `sqlite:///` URL; `build` must close every connection it opened)
    and the file is then linked into place. Returns True when this call created `path`; False when it
    already existed (or another process created it meanwhile, whose file is kept)."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(path)
    private = path.with_name(f".{path.name}.{_host()}.{os.getpid()}{_PRIVATE_SUFFIX}")
    _unlink_with_journal(private)
    try:
        build(f"{SQLITE_PREFIX}{private}")
        _fsync(private)
        try:
            os.link(private, path)
        except FileExistsError:
            return False
        _fsync(path.parent)
        return True
    finally:
        _unlink_with_journal(private)


def _host() -> str:
    return socket.gethostname().replace(".", "-") or "host"


def _remove_abandoned(path: Path) -> None:
    """Private files of builders on this host whose process is gone (killed while building)."""
    prefix = f".{path.name}.{_host()}."
    for candidate in path.parent.glob(f"{prefix}*{_PRIVATE_SUFFIX}"):
        pid_text = candidate.name[len(prefix):-len(_PRIVATE_SUFFIX)]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            _unlink_with_journal(candidate)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unlink_with_journal(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + "-journal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def _fsync(path: Path) -> None:
    """Flush a file or folder to disk, so a rename/link is not ahead of the data it points to."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
