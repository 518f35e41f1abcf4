"""Bounded checkpoint disk during a sweep: each trial keeps what promotion and resume can still need.

A trainer writes a full checkpoint (weights and optimizer state: hundreds of MB for Swin-T) every epoch, so
an ASHA sweep of a few dozen trials used to hold several hundred of them until promotion. With
`checkpoints.retention: bounded` (the default) the engine applies this rule to a trial after every
validation it records and when the trial ends:

* its best-so-far checkpoint stays (the best validated epoch by the sweep's metric, `TrialRecord.best`):
  promotion may pick it, and `hpo promote --trial` may ask for it;
* a trial that can still run (RUNNING, PAUSED) also keeps its `keep_last` newest validated checkpoints —
  the newest is where it resumes (`hpo.trials.lifecycle`: a trial continues from its last validated epoch);
  with PBT the default is 4, the checkpoints Ray can still hand to an exploiting trial — and every checkpoint
  newer than its last validated one (being written now, or written before its status line was read);
* a PRUNED or COMPLETED trial never runs again: it keeps its best only (or its newest validated one when no
  validation had a finite metric) -- except under PBT, where a finished trial is still a donor: Ray's
  scheduler hands an exploiting trial the donor's last SAVED checkpoint, which may be older than the epoch the
  donor finished at, so a finished PBT trial keeps its `keep_last` newest validated ones too (`donors=True`);
* a FAILED trial keeps its best and its newest validated checkpoint (what is left to diagnose it);
* anything else goes: epochs that were never validated (`validation_interval` > 1), the mid-epoch checkpoint
  a SIGTERM wrote once a later validation exists, validated epochs that are neither best nor recent.

So at any moment a sweep holds at most `running × (keep_last + 2) + finished × 2` checkpoints (PBT:
`finished × (keep_last + 1)`), whatever its
length. `checkpoints.retention: keep_all` deletes nothing during the sweep; promotion's own retention
(`hpo.promotion.retention`) still runs at the end unless `promotion.keep_all_checkpoints` is set.

Applied by `CheckpointRetention`, an observer of the driver (both backends call it after each recorded
validation and at each trial's end), only to trial folders it can see. Under `ray.storage` (no shared
filesystem) a trial's checkpoints live in Ray's storage and Ray's own retention applies this rule there
(best-so-far by `hpo.selection` and the newest: `RayBackend.checkpoint_config`, `ray_storage.keep_rank`), except
that a finished trial keeps its newest as well: Ray's experiment state may still name it as a restart point.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from hpo.driver.observer import SweepObserver
from hpo.trials.record import COMPLETED, FAILED, PRUNED, TrialRecord
from skillkit.checkpoints import CheckpointFile, find_latest_link, list_checkpoints

log = logging.getLogger(__name__)


def checkpoints_to_keep(record: TrialRecord, files: Iterable[CheckpointFile], *, keep_last: int,
                        donors: bool = False) -> set[Path]:
    """The checkpoint files of `record`'s trial that the rule above keeps (a pure function of its inputs);
    `donors`: finished trials may still hand their recent checkpoints to exploiting trials (PBT)."""
    files = list(files)
    by_name = {f.path.name: f for f in files}
    validated = sorted((by_name[e["checkpoint"]] for e in record.history if e.get("checkpoint") in by_name),
                       key=lambda f: (f.epoch, f.step))
    keep: set[Path] = set()
    best = (record.best or {}).get("checkpoint")
    if best in by_name:
        keep.add(by_name[best].path)
    if record.state in (PRUNED, COMPLETED):
        if donors:
            keep.update(f.path for f in validated[-max(1, keep_last):])
        if not keep and validated:
            keep.add(validated[-1].path)
        return keep
    if record.state == FAILED:
        keep.update(f.path for f in validated[-1:])
        return keep
    # RUNNING or PAUSED: it resumes from its newest validated checkpoint; newer files are in flight.
    keep.update(f.path for f in validated[-max(1, keep_last):])
    newest = (validated[-1].epoch, validated[-1].step) if validated else None
    keep.update(f.path for f in files if newest is None or (f.epoch, f.step) > newest)
    return keep


def apply_trial_retention(record: TrialRecord, trial_dir: Path, *, keep_last: int,
                          donors: bool = False) -> list[Path]:
    """Delete the checkpoints of one trial the rule does not keep; returns the deleted paths."""
    files = list_checkpoints(trial_dir)
    keep = checkpoints_to_keep(record, files, keep_last=keep_last, donors=donors)
    deleted = []
    for checkpoint in files:
        if checkpoint.path in keep:
            continue
        try:
            checkpoint.path.unlink()
        except FileNotFoundError:
            continue
        deleted.append(checkpoint.path)
    if deleted:
        repoint_latest_link(trial_dir)
    return deleted


def repoint_latest_link(trial_dir: Path) -> None:
    """Point the latest link (`<model>_latest.pth`) at the newest checkpoint left (remove it when none is), so
    it never dangles after a deletion."""
    link = find_latest_link(trial_dir)
    if link is None:
        return
    remaining = list_checkpoints(trial_dir)
    names = {c.path.name for c in remaining}
    if link.is_symlink() and link.exists() and Path(os.readlink(link)).name in names:
        return
    link.unlink()
    if remaining:
        link.symlink_to(remaining[-1].path.name)


class CheckpointRetention(SweepObserver):
    """Applies the rule to a trial after each recorded validation and when it ends (see the module docstring)."""

    def __init__(self, trials_dir: Path, *, keep_last: int, donors: bool = False) -> None:
        self.trials_dir = trials_dir
        self.keep_last = keep_last
        self.donors = donors
        self.deleted = 0

    def _apply(self, record: TrialRecord) -> None:
        trial_dir = self.trials_dir / record.trial_id
        if trial_dir.is_dir():
            self.deleted += len(apply_trial_retention(record, trial_dir, keep_last=self.keep_last,
                                                                donors=self.donors))

    def trial_reported(self, trial_record: TrialRecord, report: object) -> None:
        self._apply(trial_record)

    def trial_finished(self, trial_record: TrialRecord) -> None:
        self._apply(trial_record)
