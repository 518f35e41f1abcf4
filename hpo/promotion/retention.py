"""Checkpoint retention after a sweep: keep what can still be used, delete the rest.

A sweep of N trials x E epochs writes N x E checkpoints of hundreds of MB each. What stays:
- every finished trial's best epoch (the one promotion or a later `--trial` promotion would pick);
- a paused trial's best epoch and its newest checkpoint (the one it resumes from);
- a trial that is still running keeps everything;
- a finished trial with no validated metric keeps its newest checkpoint (the only evidence of how far it got);
- the promoted checkpoint, always, and any path the caller protects.
`keep_all_checkpoints: true` keeps everything. The latest link (`<model>_latest.pth`) is pointed at the
newest checkpoint that is left (or removed when none is), so it never dangles. The best epoch is the
record's (`hpo.trials.candidates.best_epoch`); file names are the kit's (`skillkit.checkpoints`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hpo.trials.candidates import as_record, best_epoch
from hpo.trials.record import TrialRecord
from hpo.trials.retention import repoint_latest_link
from skillkit.checkpoints import list_checkpoints
from skillkit.files import TRIALS_DIR
from skillkit.states import TrialState


@dataclasses.dataclass(frozen=True)
class RetentionReport:
    deleted: tuple[Path, ...]
    kept: tuple[Path, ...]
    freed_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"deleted": [str(p) for p in self.deleted], "kept": [str(p) for p in self.kept],
                "freed_bytes": self.freed_bytes}


def apply_retention(sweep_dir: Path, trials: Iterable[TrialRecord | Mapping[str, Any]], *, metric: str,
                    direction: str, protected: Iterable[Path] = (), keep_all: bool = False) -> RetentionReport:
    """Delete the checkpoints no one needs any more (nothing when `keep_all`)."""
    keep_paths = {_identity(path) for path in protected if Path(path).exists()}
    deleted: list[Path] = []
    kept: list[Path] = []
    freed = 0
    for trial in map(as_record, trials):
        trial_dir = sweep_dir / TRIALS_DIR / trial.trial_id
        checkpoints = [c.path for c in list_checkpoints(trial_dir)]
        if not checkpoints:
            continue
        needed = set(checkpoints) if keep_all else _needed(trial, trial_dir, checkpoints, metric, direction)
        for path in checkpoints:
            if path in needed or _identity(path) in keep_paths:
                kept.append(path)
                continue
            size = path.stat().st_size
            path.unlink()
            deleted.append(path)
            freed += size
        repoint_latest_link(trial_dir)
    return RetentionReport(tuple(deleted), tuple(kept), freed)


def _needed(trial: TrialRecord, trial_dir: Path, checkpoints: list[Path], metric: str,
            direction: str) -> set[Path]:
    if trial.state == TrialState.RUNNING:
        return set(checkpoints)  # the trainer may still need any of them
    needed: set[Path] = set()
    best = best_epoch(trial, trial_dir, metric, direction)
    if best is not None:
        needed.add(best.checkpoint)
    if trial.state == TrialState.PAUSED or best is None:
        needed.add(checkpoints[-1])  # the newest (list_checkpoints sorts by epoch and step)
    return needed


def _identity(path: Path) -> tuple[int, int]:
    """(device, inode): a hard link in best/ and its source in the trial folder are the same file."""
    stat = Path(path).stat()
    return stat.st_dev, stat.st_ino
