"""Lightning callbacks that implement the engine–trainer contract (DESIGN.md §3).

* `ValidationSchedule` – validate after every `validation_interval`-th completed epoch, and always after the
  last epoch and after `EARLY_STOP_EPOCH`, so every stopping point has a metric.
* `ContractCheckpoint` – `model_epoch_{epoch:03d}_step_{step:05d}.pth` (`skillkit.checkpoints`) every
  `checkpoint_interval` epochs or steps, always at the last epoch, at `EARLY_STOP_EPOCH` and on SIGTERM;
  keeps the `mask2former_model_latest.pth` symlink pointing at the newest file.
* `EarlyStopEpoch` – stop cleanly once epoch `EARLY_STOP_EPOCH` is completed (validated, checkpointed).
* `StatusReporter` – RUNNING lines in status.json (one per completed epoch, carrying the validation
  metrics when that epoch was validated; mid-epoch validations get their own line).
* `StepReseed` – re-seeds python/numpy/torch before every training step from (seed, step), so the
  randomness of a step (dropout, drop-path, point sampling) does not depend on what ran before it: a
  resumed run continues the curve the uninterrupted run would have drawn. (Data augmentation is seeded
  per item by the data module, `EpochSeededDataset`.)
* (SIGTERM is handled by `distributed_stop.StopOnSigterm`: one stop that every rank agrees on.)

Callback order matters and `build_contract_callbacks` fixes it: the checkpoint is written before the
status line that announces the epoch, and the early stop is requested last.

`epoch` in file names and status lines is TAO's: Lightning's `trainer.current_epoch`, the 0-based index of
the epoch in progress, which inside `on_train_epoch_end` (after that epoch's validation) is still the
index of the epoch that just finished (see `skillkit.checkpoints` for TAO's own source). Schedules and
budgets (`validation_interval`, `checkpoint_interval`, `num_epochs`, `EARLY_STOP_EPOCH`) count completed
epochs, which at that point is current_epoch + 1.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from skillkit.checkpoints import checkpoint_name, point_latest_link
from skillkit.errors import SpecError
from skillkit.states import RunStatus
from skillkit.status.writer import StatusWriter

log = logging.getLogger(__name__)

MODEL_NAME = "mask2former_model"  # TAO's `checkpoint_filename` for Mask2Former: the link is `<name>_latest.pth`
EARLY_STOP_ENV = "EARLY_STOP_EPOCH"
_NEVER = 2**31 - 1


def early_stop_epoch_from_env(env: dict[str, str] | None = None) -> int | None:
    """`EARLY_STOP_EPOCH` as a positive int, or None when unset/empty. A malformed value is a clear error.

    It counts epochs, like `train.num_epochs`: EARLY_STOP_EPOCH=2 stops after two completed epochs, i.e.
    after TAO epoch index 1 (`model_epoch_001_step_*.pth` is the last checkpoint).
    """
    raw = (os.environ if env is None else env).get(EARLY_STOP_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SpecError(f"environment variable {EARLY_STOP_ENV} must be a positive number of epochs, got {raw!r}.")
    return value


def completed_epochs_at_epoch_end(trainer: L.Trainer) -> int:
    return trainer.current_epoch + 1


class ValidationSchedule(Callback):
    """Decides per epoch whether Lightning validates at its end.

    Lightning reads the public `trainer.check_val_every_n_epoch` each time it considers validating, so
    setting it at the start of every epoch (1 = validate this epoch, a huge value = skip) gives an exact
    schedule that plain `check_val_every_n_epoch` cannot express (it never forces the last epoch).
    """

    def __init__(self, *, interval: int, max_epochs: int, early_stop_epoch: int | None) -> None:
        self.interval = max(1, int(interval))
        self.max_epochs = int(max_epochs)
        self.early_stop_epoch = early_stop_epoch

    def should_validate(self, completed: int) -> bool:
        return (
            completed % self.interval == 0
            or completed >= self.max_epochs
            or (self.early_stop_epoch is not None and completed == self.early_stop_epoch)
        )

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.check_val_every_n_epoch = 1 if self.should_validate(trainer.current_epoch + 1) else _NEVER


class ContractCheckpoint(Callback):
    """Writes contract-named checkpoints and maintains the `_latest` symlink (see module docstring).

    Every rank calls `trainer.save_checkpoint` (FSDP needs all ranks; Lightning writes from rank 0 only);
    the symlink is touched by global zero only.
    """

    def __init__(
        self,
        results_dir: str | os.PathLike[str],
        *,
        interval: int,
        unit: str,
        max_epochs: int,
        early_stop_epoch: int | None,
        enabled: bool = True,
    ) -> None:
        if unit not in ("epoch", "step"):
            raise ValueError(f"checkpoint unit must be 'epoch' or 'step', got {unit!r}")
        self.results_dir = Path(results_dir)
        self.interval = max(1, int(interval))
        self.unit = unit
        self.max_epochs = int(max_epochs)
        self.early_stop_epoch = early_stop_epoch
        self.enabled = enabled
        self.last_saved: tuple[int, int] | None = None
        self.last_path: Path | None = None
        self._pending_completed: int | None = None
        self._step_due = False

    # -- saving -------------------------------------------------------------------------------------------
    def save(self, trainer: L.Trainer, *, completed: int) -> Path | None:
        """Save a checkpoint at the current global step, named with TAO's index of the epoch in progress
        (`trainer.current_epoch`), unless already saved; `completed` epochs are done at this point."""
        if not self.enabled:
            return None
        epoch, step = int(trainer.current_epoch), int(trainer.global_step)
        if self.last_saved == (epoch, step):
            return self.last_path
        path = self.results_dir / checkpoint_name(epoch, step)
        self._pending_completed = completed
        try:
            trainer.save_checkpoint(str(path), weights_only=False)
        finally:
            self._pending_completed = None
        self.last_saved = (epoch, step)
        self.last_path = path
        if trainer.is_global_zero:
            point_latest_link(self.results_dir, MODEL_NAME, path.name)
        return path

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # Contract fields next to Lightning's own `epoch`: the epochs completed (what a resume continues
        # from) and the step.
        checkpoint["completed_epochs"] = (
            self._pending_completed if self._pending_completed is not None else int(trainer.current_epoch)
        )
        checkpoint["global_step_contract"] = int(trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.unit != "step" or trainer.global_step == 0 or trainer.global_step % self.interval != 0:
            return
        if batch_idx + 1 >= trainer.num_training_batches:
            # The epoch's last batch: save from `on_train_epoch_end`, when the epoch counts as completed.
            self._step_due = True
            return
        self.save(trainer, completed=int(trainer.current_epoch))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        completed = completed_epochs_at_epoch_end(trainer)
        due = (self.unit == "epoch" and completed % self.interval == 0) or self._step_due
        self._step_due = False
        if due or completed >= self.max_epochs or completed == self.early_stop_epoch:
            self.save(trainer, completed=completed)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            # Mid-epoch: named, like TAO's exception checkpoint, with the index of the epoch in progress.
            self.save(trainer, completed=int(trainer.current_epoch))


class EarlyStopEpoch(Callback):
    """Requests a clean stop once `early_stop_epoch` epochs are completed (after validation and checkpoint)."""

    def __init__(self, early_stop_epoch: int | None) -> None:
        self.early_stop_epoch = early_stop_epoch
        self.triggered = False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.early_stop_epoch is not None and completed_epochs_at_epoch_end(trainer) >= self.early_stop_epoch:
            if completed_epochs_at_epoch_end(trainer) < trainer.max_epochs:
                self.triggered = True
            trainer.should_stop = True


class _PendingValidation(NamedTuple):
    """A mid-epoch validation's metrics, held until the status line they belong to is written."""

    metrics: dict[str, float | None]
    epoch: int
    step: int


class StatusReporter(Callback):
    """RUNNING lines for completed epochs and validations.

    Args:
        writer: the run's `StatusWriter` (disabled on non-zero ranks).
        metrics_fn: returns the system's latest validation metrics (dict) or None.
        train_loss_fn: returns the mean training loss of the epoch so far (float) or None.
        lr_fn: returns the current base learning rate (head group).
        max_epochs: planned epochs, for the ETA.
    """

    def __init__(
        self,
        writer: StatusWriter,
        *,
        metrics_fn: Callable[[], Mapping[str, float | None] | None],
        train_loss_fn: Callable[[], float | None],
        lr_fn: Callable[[], float | None],
        max_epochs: int,
        monitor_fn: Callable[[], tuple[str, float | None]] | None = None,
    ) -> None:
        self.writer = writer
        self.metrics_fn = metrics_fn
        self.train_loss_fn = train_loss_fn
        self.lr_fn = lr_fn
        self.max_epochs = int(max_epochs)
        self.monitor_fn = monitor_fn
        self._epoch_started: float | None = None
        self._epoch_times: list[float] = []
        self._pending_validation: _PendingValidation | None = None

    def _base_kpi(self) -> dict[str, Any]:
        return {"train_loss": self.train_loss_fn(), "lr": self.lr_fn()}

    def _monitor_text(self) -> str:
        if self.monitor_fn is None:
            return ""
        name, value = self.monitor_fn()
        return f"; {name}={value:.4f}" if value is not None else ""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_started = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Validation inside `fit` only (not the sanity check, not `trainer.validate` of the evaluate action).
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        metrics = self.metrics_fn()
        if metrics is not None:
            # Held until we know whether it closes an epoch (merged into that epoch's line) or not.
            self._pending_validation = _PendingValidation(dict(metrics), int(trainer.current_epoch),
                                                          int(trainer.global_step))

    def _flush_mid_epoch_validation(self) -> None:
        if self._pending_validation is None:
            return
        pending, self._pending_validation = self._pending_validation, None
        self.writer.write(RunStatus.RUNNING, f"Validation at epoch {pending.epoch} step {pending.step}"
                          + self._monitor_text(), epoch=pending.epoch, step=pending.step,
                          kpi={**pending.metrics, **self._base_kpi()})

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._flush_mid_epoch_validation()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        completed = completed_epochs_at_epoch_end(trainer)
        elapsed = time.monotonic() - (self._epoch_started or time.monotonic())
        self._epoch_times.append(elapsed)
        mean_epoch = sum(self._epoch_times) / len(self._epoch_times)
        eta = mean_epoch * max(0, self.max_epochs - completed)
        kpi = self._base_kpi()
        message = f"Epoch {trainer.current_epoch} finished ({completed}/{self.max_epochs} epochs)"
        if self._pending_validation is not None:
            kpi = {**self._pending_validation.metrics, **kpi}
            message += " and validated"
        self._pending_validation = None
        self.writer.write(RunStatus.RUNNING, message + self._monitor_text(), epoch=int(trainer.current_epoch),
                          step=int(trainer.global_step), time_per_epoch=elapsed, eta=eta, kpi=kpi)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._flush_mid_epoch_validation()


class ContractCallbacks(NamedTuple):
    """The contract callbacks, in the order Lightning must run them (pass `*callbacks` to the Trainer)."""

    schedule: ValidationSchedule
    checkpoint: ContractCheckpoint
    status: StatusReporter
    early_stop: EarlyStopEpoch


def build_contract_callbacks(
    *,
    results_dir: str | os.PathLike[str],
    writer: StatusWriter,
    checkpoint_interval: int,
    checkpoint_unit: str,
    validation_interval: int,
    max_epochs: int,
    early_stop_epoch: int | None,
    metrics_fn: Callable[[], Mapping[str, float | None] | None],
    train_loss_fn: Callable[[], float | None],
    lr_fn: Callable[[], float | None],
    monitor_fn: Callable[[], tuple[str, float | None]] | None = None,
    save_checkpoints: bool = True,
) -> ContractCallbacks:
    """The contract callbacks in the order they must run (checkpoint, then status line, then stop)."""
    return ContractCallbacks(
        ValidationSchedule(interval=validation_interval, max_epochs=max_epochs, early_stop_epoch=early_stop_epoch),
        ContractCheckpoint(results_dir, interval=checkpoint_interval, unit=checkpoint_unit, max_epochs=max_epochs,
                           early_stop_epoch=early_stop_epoch, enabled=save_checkpoints),
        StatusReporter(writer, metrics_fn=metrics_fn, train_loss_fn=train_loss_fn, lr_fn=lr_fn,
                       max_epochs=max_epochs, monitor_fn=monitor_fn),
        EarlyStopEpoch(early_stop_epoch),
    )


def step_seed(seed: int, step: int) -> int:
    """The seed of optimizer step `step` of a run seeded with `seed`."""
    return (int(seed) * 1_000_003 + 7919 * (int(step) + 1)) % (2**31 - 1)


class StepReseed(Callback):
    """Seeds python, numpy and torch from (seed, global step, rank) before every training step.

    Reseeding per step rather than per epoch keeps the step's randomness (dropout, drop-path, the
    criterion's point sampling) independent of anything that draws from the global generators between
    steps, such as Lightning creating a data-loader iterator, which happens at different moments in a
    fresh and a resumed run.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        value = (step_seed(self.seed, trainer.global_step) + trainer.global_rank) % (2**31 - 1)
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)
