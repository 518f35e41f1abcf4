"""A clean stop on SIGTERM that every process of a run agrees on: the main process, each DDP rank and the
data-loader workers.

The engine signals a trainer's whole process group (as SLURM signals a job step), so every rank and every
data-loader worker receives the SIGTERM, each at its own moment. What must happen is one stop, at the same
step on every rank, with one checkpoint and one status line. Three rules make that so:

* `StopOnSigterm` is the only SIGTERM handler while training runs, and it only sets a flag. Lightning's own
  handler (2.6) runs a collective broadcast inside the signal handler, which pairs with whatever collective
  another rank happens to be in (a gradient all-reduce, the per-step SIGTERM broadcast) and hangs or
  corrupts the run; it is replaced at `on_train_start`, after Lightning installed it.
* Before every training step the ranks all-reduce (max) their flags, so a SIGTERM seen by any rank stops all
  of them at that step; `SIGTERMException` is raised on every rank together, Lightning calls
  `on_exception` everywhere (the contract checkpoint is saved collectively, written by rank 0) and each
  rank exits 0. A SIGTERM that arrives while the model and data are still being built is remembered and
  honoured at the first step, as is one during validation (the epoch's validation completes first, so its
  metric is reported).
* Data-loader workers ignore SIGTERM (`mask2former.data.worker_init.ignore_sigterm_in_worker`, chained
  with Lightning's worker seeding): a worker killed by it would make the main process raise "DataLoader worker exited
  unexpectedly" and turn the stop into a failure. Workers end when their loader shuts down, and the
  engine SIGKILLs whatever is left of the group once the main process has exited.

Single-process runs take the same path without the all-reduce.
"""

from __future__ import annotations

import signal
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException


class StopOnSigterm(Callback):
    """Flag-only SIGTERM handler plus a per-step, all-rank decision to stop (see the module docstring).

    Call `install()` before building anything (so an early SIGTERM is remembered) and `uninstall()` when
    training is over; Lightning calls the hooks in between.
    """

    def __init__(self) -> None:
        self.received = False
        self._previous: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        self.received = True

    def install(self) -> None:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handler)
            self._installed = True
        except ValueError:  # not the main thread: signals cannot be handled here
            self._installed = False

    def uninstall(self) -> None:
        if self._installed:
            try:
                signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
            except ValueError:
                pass
            self._installed = False

    def _take_over(self) -> None:
        """Replace whatever handler Lightning installed since `install()` with ours (a flag only)."""
        if self._installed:
            signal.signal(signal.SIGTERM, self._handler)

    def stop_agreed(self, trainer: L.Trainer) -> bool:
        """Whether any rank received SIGTERM; a collective: every rank calls it at the same step."""
        flag = self.received
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=trainer.strategy.root_device)
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
            flag = bool(tensor.item())
        if flag:
            self.received = True
        return flag

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._take_over()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.stop_agreed(trainer):
            raise SIGTERMException()
