"""Checkpoint file names, written once: `model_epoch_{epoch:03d}_step_{step:05d}.pth` and the latest link.

Numbering is TAO's own. NVIDIA/tao_pytorch_backend saves checkpoints with Lightning's `ModelCheckpoint`
(`filename='model_{epoch:03d}_{step:05d}'`, `=` replaced by `_`, in
`nvidia_tao_pytorch/core/lightning/tao_lightning_module.py`) and, on an exception, as
`model_epoch_{trainer.current_epoch:03d}_step_{trainer.global_step:05d}`
(`nvidia_tao_pytorch/core/callbacks/model_checkpoint.py`). Lightning fills `{epoch}` with
`trainer.current_epoch`, the 0-BASED INDEX of the epoch in progress (still the finished epoch's index inside
`on_train_epoch_end`, where the checkpoint is saved). So the checkpoint written at the end of the first
epoch is `model_epoch_000_step_XXXXX.pth`, and `status.json`'s `epoch` is the same index
(`TAOStatusLogger.on_train_epoch_end` writes `trainer.current_epoch`, with `max_epoch = max_epochs - 1`).
A validation line (epoch e, step s) and its checkpoint name therefore carry the same two numbers.

Budgets stay counts: `train.num_epochs`, `EARLY_STOP_EPOCH`, a scheduler's `max_t`/rungs and a trial's
epoch budget count epochs trained. `epochs_trained(e)` and `last_epoch_index(n)` convert, here only.

The latest link is `<model>_latest.pth` (TAO: `ModelCheckpoint.CHECKPOINT_NAME_LAST =
f"{checkpoint_filename}_latest"`, Mask2Former's `checkpoint_filename` being `mask2former_model`); readers
find it as TAO's `get_latest_checkpoint` does, by the `_latest.pth` suffix, without knowing the model.

Compatibility with runs written before this project adopted TAO's numbering (epoch-end checkpoints were
named by the number of COMPLETED epochs, one more than TAO's index; mid-epoch ones already used the
index): such a file has the right step in its name but an epoch one higher. `checkpoint_for` looks for
the exact (epoch, step) first and then for (epoch + 1, step), which in a current run could only be a
checkpoint taken before the first step of the next epoch, i.e. the same weights. `skillkit.status`
recognises the old status lines (see `skillkit.status.format`) and converts their epochs on read.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

CHECKPOINT_FORMAT = "model_epoch_{epoch:03d}_step_{step:05d}.pth"
CHECKPOINT_GLOB = "model_epoch_*_step_*.pth"
_CHECKPOINT_NAME = re.compile(r"^model_epoch_(?P<epoch>\d{3,})_step_(?P<step>\d{5,})\.pth$")
LATEST_SUFFIX = "_latest.pth"


class CheckpointFile(NamedTuple):
    """A checkpoint on disk and the two numbers in its name (TAO epoch index, global step)."""

    path: Path
    epoch: int
    step: int

    @property
    def name(self) -> str:
        return self.path.name


def checkpoint_name(epoch: int, step: int) -> str:
    """File name of the checkpoint written during/at the end of epoch index `epoch` at global step `step`."""
    if epoch < 0 or step < 0:
        raise ValueError(f"a checkpoint name needs epoch >= 0 and step >= 0, got epoch={epoch}, step={step}")
    return CHECKPOINT_FORMAT.format(epoch=epoch, step=step)


def parse_checkpoint_name(name: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(epoch, step) of a checkpoint file name (a bare name or a path), or None for any other file."""
    match = _CHECKPOINT_NAME.match(Path(name).name)
    return (int(match["epoch"]), int(match["step"])) if match else None


def is_checkpoint_name(name: str | os.PathLike[str]) -> bool:
    return parse_checkpoint_name(name) is not None


def list_checkpoints(folder: str | os.PathLike[str]) -> list[CheckpointFile]:
    """Every checkpoint file in `folder` (regular files only: the latest link is not one), by (epoch, step)."""
    folder = Path(folder)
    found = []
    if folder.is_dir():
        for path in folder.glob(CHECKPOINT_GLOB):
            numbers = parse_checkpoint_name(path.name)
            if numbers is not None and path.is_file() and not path.is_symlink():
                found.append(CheckpointFile(path, *numbers))
    return sorted(found, key=lambda c: (c.epoch, c.step))


def checkpoints_of_epoch(folder: str | os.PathLike[str], epoch: int) -> list[CheckpointFile]:
    """The files named with epoch index `epoch` (mid-epoch ones included), oldest first."""
    return [c for c in list_checkpoints(folder) if c.epoch == epoch]


def checkpoint_for(folder: str | os.PathLike[str], epoch: int, step: int | None) -> CheckpointFile | None:
    """The checkpoint written for the validation at (`epoch`, `step`).

    The exact file; else a file of the old numbering (epoch + 1, same step; see the module docstring);
    else the newest file of that epoch not later than `step` (a trainer whose names count steps
    differently). Without a step: the newest file of that epoch. None when there is none.
    """
    files = list_checkpoints(folder)
    if step is not None:
        for wanted in ((epoch, step), (epoch + 1, step)):
            exact = [c for c in files if (c.epoch, c.step) == wanted]
            if exact:
                return exact[0]
    candidates = [c for c in files if c.epoch == epoch and (step is None or c.step <= step)]
    return candidates[-1] if candidates else None


def epochs_trained(epoch: int) -> int:
    """Epochs trained once epoch index `epoch` is complete (the resource a scheduler counts)."""
    return int(epoch) + 1


def last_epoch_index(num_epochs: int) -> int:
    """Index of the last epoch of a run of `num_epochs` epochs (TAO's `max_epoch`)."""
    return int(num_epochs) - 1


def latest_link_name(model_name: str) -> str:
    """`<model_name>_latest.pth`, the link to the newest checkpoint (`mask2former_model_latest.pth`)."""
    return f"{model_name}{LATEST_SUFFIX}"


def find_latest_link(folder: str | os.PathLike[str]) -> Path | None:
    """The `*_latest.pth` link (or file) in `folder`, as TAO's `get_latest_checkpoint` finds it."""
    found = sorted(Path(folder).glob(f"*{LATEST_SUFFIX}"))
    return found[0] if found else None


def point_latest_link(folder: str | os.PathLike[str], model_name: str, target_name: str) -> Path:
    """Atomically (re)point `<model_name>_latest.pth` in `folder` at `target_name` (a relative link)."""
    folder = Path(folder)
    link = folder / latest_link_name(model_name)
    temporary = folder / f".{link.name}.{os.getpid()}.tmp"
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    os.symlink(target_name, temporary)
    os.replace(temporary, link)
    return link
