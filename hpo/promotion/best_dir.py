"""The `best/` folder's life: built beside the old one and swapped in, never half-written, and never deleting
what the user put there.

Every promotion ends by recording the files it left in `best/` (`.promoted_files.json`: relative path ->
size and modification time). The next promotion compares `best/` with that record: a file it does not know,
or one that changed since (an ONNX graph the user exported into `best/`, a note, an edited spec), is the
user's. Then the whole old folder is kept, moved aside to `best.<YYYYmmdd-HHMMSS>/` (as the quickstart
keeps an earlier workspace), and the move is logged and recorded in best.json; otherwise the old folder is
replaced. A `best/` without the record (written by hand, or by an older version) counts as the user's.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

PROMOTED_FILES = ".promoted_files.json"


def _listing(folder: Path) -> dict[str, list[int]]:
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != PROMOTED_FILES:
            stat = path.stat()
            found[path.relative_to(folder).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return found


def user_files(best_dir: Path) -> list[str]:
    """Files in `best_dir` the last promotion did not leave there (or that changed since), relative paths."""
    if not best_dir.is_dir():
        return []
    record = best_dir / PROMOTED_FILES
    try:
        known = json.loads(record.read_text()) if record.is_file() else {}
    except (OSError, json.JSONDecodeError):
        known = {}
    return [name for name, state in _listing(best_dir).items() if known.get(name) != state]


def record_promoted_files(best_dir: Path) -> None:
    """Remember what this promotion left in `best_dir` (call it last, once everything is written)."""
    (best_dir / PROMOTED_FILES).write_text(json.dumps(_listing(best_dir), indent=0, sort_keys=True))


def aside_name(best_dir: Path) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate, number = best_dir.with_name(f"{best_dir.name}.{stamp}"), 1
    while candidate.exists():
        number += 1
        candidate = best_dir.with_name(f"{best_dir.name}.{stamp}-{number}")
    return candidate


def swap_in(best_dir: Path, fill: Callable[[Path], None]) -> Path | None:
    """Build the new `best_dir` in a staging folder with `fill(folder)` and swap it in. Returns where the old
    folder was kept when it held the user's files, else None (the old promotion's files are dropped)."""
    staging = best_dir.with_name(f".{best_dir.name}.new-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        fill(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    kept = None
    if best_dir.exists():
        theirs = user_files(best_dir)
        if theirs:
            kept = aside_name(best_dir)
            os.replace(best_dir, kept)
            shown = ", ".join(theirs[:5]) + (f" and {len(theirs) - 5} more" if len(theirs) > 5 else "")
            logger.warning("%s held files this promotion did not write (%s); kept: the old folder is now %s",
                           best_dir, shown, kept)
        else:
            old = best_dir.with_name(f".{best_dir.name}.old-{os.getpid()}")
            os.replace(best_dir, old)
            os.replace(staging, best_dir)
            shutil.rmtree(old, ignore_errors=True)
            return None
    os.replace(staging, best_dir)
    return kept
