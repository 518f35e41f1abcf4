"""`run_training(cfg, spec)`: the composition root of a training run.

This is the one place that reads the experiment config for training; everything below it takes plain
arguments. Order of work, and why:

1. results_dir, devices/precision, seed (drawn when train.seed is -1), status.json STARTED naming them
   (so even a failure during setup leaves a FAILURE line next to it);
2. cuDNN flags;
3. data: label map, `model.mode` vs dataset type, required fields (errors surface before the model
   is built, as a spec/data error with the key or file named);
4. model, criterion (`train.activation_checkpoint` switches on the Swin blocks' `use_checkpoint`),
   pretrained weights (unless resuming, where the checkpoint's weights win), freezing;
5. Lightning Trainer with the contract callbacks, `fit` (resuming via `ckpt_path`);
6. SUCCESS (also for a clean stop on SIGTERM / EARLY_STOP_EPOCH, with the reason in the message) or
   FAILURE with its error class; an out-of-memory error is re-raised as `TrainingOutOfMemory`
   (exit code 10) carrying advice.

`train.is_dry_run`: one training batch and one validation batch, no checkpoint written, then stop.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException

from mask2former.config import ExperimentConfig
from mask2former.training.callbacks import StepReseed, build_contract_callbacks, early_stop_epoch_from_env
from mask2former.training.checkpoint_io import checkpoint_completed_epochs, read_checkpoint, resume_mismatch
from mask2former.training.datamodule import Mask2FormerDataModule
from mask2former.training.distributed_stop import StopOnSigterm
from mask2former.training.failures import OOM_ADVICE, TrainingOutOfMemory, classify
from mask2former.training.model_setup import apply_freeze, load_pretrained
from mask2former.training.runtime import (
    apply_cudnn_flags,
    export_topology_for_children,
    resolve_topology,
    seed_everything,
)
from mask2former.training.system import ClipSettings, Mask2FormerSystem, OptimSettings
from mask2former.training.validation import MetricsSuite
from skillkit.errors import SpecError
from skillkit.status.writer import ERROR, FAILURE, STARTED, SUCCESS, WARNING, StatusWriter

log = logging.getLogger("mask2former.train")


def results_dir_of(cfg: ExperimentConfig, section: str = "train") -> Path:
    """`<section>.results_dir`, else the top-level `results_dir`; one of them must be set."""
    chosen = getattr(getattr(cfg, section), "results_dir", "") or cfg.results_dir
    if not chosen:
        raise SpecError(f"results_dir is empty: set results_dir (or {section}.results_dir) to the folder the run writes to.")
    return Path(chosen).expanduser()


def _is_global_zero() -> bool:
    """True in the process Lightning will make global rank 0: the launching process of node 0, or its
    local-rank-0 child. Other ranks do not write status.json."""
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0)) or 0)
    return node == 0 and int(os.environ.get("LOCAL_RANK", 0) or 0) == 0


def optim_settings(cfg: ExperimentConfig) -> OptimSettings:
    optim = cfg.train.optim
    return OptimSettings(
        lr=float(optim.lr), weight_decay=float(optim.weight_decay),
        backbone_multiplier=float(optim.backbone_multiplier), momentum=float(optim.momentum),
        scheduler=str(optim.lr_scheduler), milestones=tuple(int(m) for m in optim.milestones),
        gamma=float(optim.gamma), monitor_name=str(optim.monitor_name),
    )


def clip_settings(cfg: ExperimentConfig) -> ClipSettings:
    train = cfg.train
    kind = str(train.clip_grad_type)
    if kind not in ("full", "norm", "value"):
        raise SpecError(f"train.clip_grad_type must be full, norm or value, got {kind!r}.")
    return ClipSettings(max_norm=float(train.clip_grad_norm or 0.0), kind=kind,
                        norm_type=float(train.clip_grad_norm_type or 2.0))


class _TidyProgressBar(TQDMProgressBar):
    """tqdm lines that are closed when training ends on an exception too: Lightning leaves them open then,
    and an open bar prints itself once more when the process exits (a stray "Epoch 0: 0%" after the fact)."""

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        for name in ("_train_progress_bar", "_val_progress_bar", "_test_progress_bar", "_predict_progress_bar"):
            bar = getattr(self, name, None)
            if bar is not None:
                bar.close()


def _progress_bar() -> L.Callback:
    # A live rich bar per epoch in a terminal; in log files (trials) tqdm lines, refreshed sparingly.
    if sys.stderr.isatty():
        return RichProgressBar(leave=True)
    return _TidyProgressBar(refresh_rate=20)


def build_model_and_criterion(cfg: ExperimentConfig, *, load_backbone_weights: bool = True) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Model and criterion for `cfg`; `train.activation_checkpoint` turns on the backbone's checkpointing.
    `load_backbone_weights=False` skips `model.backbone.pretrained_weights` (a resumed run's checkpoint
    supplies every weight)."""
    from mask2former.model.build import build_criterion, build_model

    if cfg.train.activation_checkpoint:
        cfg = copy.deepcopy(cfg)
        cfg.model.backbone.swin.use_checkpoint = True
        cfg.model.backbone.efficientvit.use_checkpoint = True
    return build_model(cfg, load_pretrained=load_backbone_weights), build_criterion(cfg)


def run_training(cfg: ExperimentConfig, spec: Mapping[str, Any]) -> None:
    """Train per `cfg`; `spec` is the same experiment as a plain dict, stored in
    every checkpoint. Returns normally on success and on a clean stop; raises otherwise (see module doc)."""
    results_dir = results_dir_of(cfg)
    writer = StatusWriter(results_dir, num_epochs=int(cfg.train.num_epochs), enabled=_is_global_zero())
    guard = StopOnSigterm()
    guard.install()
    progress = _Progress()
    try:
        _run(cfg, spec, results_dir, writer, guard, progress)
    except SIGTERMException:
        writer.write(SUCCESS, "Training stopped on SIGTERM: checkpoint written, run can be resumed.",
                     verbosity=WARNING, epoch=progress.epoch, step=progress.step)
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            writer.write(FAILURE, "Training interrupted (KeyboardInterrupt).", verbosity=ERROR,
                         error_class="internal")
            raise
        error_class = classify(error)
        message = f"{OOM_ADVICE} ({error})" if error_class == "oom" else f"{type(error).__name__}: {error}"
        writer.write(FAILURE, message, verbosity=ERROR, error_class=error_class,
                     epoch=progress.epoch, step=progress.step)
        if error_class == "oom" and not isinstance(error, TrainingOutOfMemory):
            raise TrainingOutOfMemory(f"{OOM_ADVICE}\n(original error: {error})") from error
        raise
    finally:
        guard.uninstall()


@dataclass
class _Progress:
    """TAO index of the epoch in progress (= epochs completed) and global step last known, for the final
    status line of an interrupted run."""

    epoch: int | None = None
    step: int | None = None


def _run(cfg: ExperimentConfig, spec: Mapping[str, Any], results_dir: Path, writer: StatusWriter, guard: StopOnSigterm,
         progress: _Progress) -> None:
    train = cfg.train
    topology = resolve_topology(train)
    max_epochs = int(train.num_epochs)
    early_stop = early_stop_epoch_from_env()
    resume_path = str(train.resume_training_checkpoint_path or "")
    start_epoch, start_step = 0, 0
    resume_checkpoint: dict[str, Any] | None = None
    if resume_path:
        resume_checkpoint = read_checkpoint(resume_path, what="train.resume_training_checkpoint_path")
        start_epoch = checkpoint_completed_epochs(resume_checkpoint)
        start_step = int(resume_checkpoint.get("global_step", 0))
        if start_epoch >= max_epochs:
            raise SpecError(
                f"train.resume_training_checkpoint_path '{resume_path}' has already completed {start_epoch} epochs; "
                f"train.num_epochs={max_epochs} leaves nothing to train. Raise train.num_epochs to continue."
            )
    progress.epoch, progress.step = start_epoch, start_step

    notices = list(topology.notices)
    if cfg.wandb.enable:
        notices.append("wandb.enable is accepted for TAO compatibility only: nothing is logged to W&B "
                       "(metrics go to status.json; sweeps log to MLflow).")
    seed = seed_everything(int(train.seed))
    started = f"Resuming training at epoch {start_epoch} (step {start_step})" if resume_path else "Starting training"
    # No `epoch` on the STARTED line, as TAO writes it (a line with one marks a run of the old numbering).
    writer.write(STARTED, f"{started} ({topology.accelerator}, precision {topology.precision}, seed {seed})"
                 + "".join(f"; NOTE: {n}" for n in notices),
                 verbosity=WARNING if notices else "INFO", step=start_step)
    for notice in notices:
        log.warning(notice)
    apply_cudnn_flags(benchmark=train.cudnn.benchmark, deterministic=train.cudnn.deterministic)

    data = Mask2FormerDataModule(cfg.dataset, mode=cfg.model.mode, num_classes=cfg.model.sem_seg_head.num_classes,
                                 seed=seed, start_epoch=start_epoch)
    data.check(training=True)

    model, criterion = build_model_and_criterion(cfg, load_backbone_weights=not resume_path)
    if resume_checkpoint is not None:
        # Refused here, as a spec error, rather than by Lightning's strict load (a raw size-mismatch traceback).
        mismatch = resume_mismatch(resume_checkpoint, model, spec, path=resume_path)
        del resume_checkpoint
        if mismatch:
            raise SpecError(mismatch)
    _write_model_args(cfg, results_dir, writer.enabled)
    if train.pretrained_model_path and not resume_path:
        report = load_pretrained(model, train.pretrained_model_path)
        for notice in report.notices(str(train.pretrained_model_path)):
            log.warning(notice)
    frozen = apply_freeze(model, train.freeze)
    if frozen:
        log.info("frozen %d parameter tensors under %s", len(frozen), list(train.freeze))

    from mask2former.model.build import build_postprocessor

    postprocessor = build_postprocessor(cfg, thing_ids=sorted(data.categories.thing_train_ids))
    suite = MetricsSuite(mode=cfg.model.mode, categories=data.categories,
                         num_classes=int(cfg.model.sem_seg_head.num_classes), postprocessor=postprocessor)
    system = Mask2FormerSystem(model, criterion, spec=spec, optim=optim_settings(cfg), clip=clip_settings(cfg),
                               validation=suite)

    dry_run = bool(train.is_dry_run)
    contract = build_contract_callbacks(
        results_dir=results_dir, writer=writer, checkpoint_interval=int(train.checkpoint_interval),
        checkpoint_unit=str(train.checkpoint_interval_unit), validation_interval=int(train.validation_interval),
        max_epochs=1 if dry_run else max_epochs, early_stop_epoch=early_stop,
        metrics_fn=lambda: system.last_validation, train_loss_fn=system.epoch_train_loss, lr_fn=system.current_lr,
        monitor_fn=system.monitored_value, save_checkpoints=not dry_run,
    )
    export_topology_for_children(topology)
    iters = train.iters_per_epoch
    trainer = L.Trainer(
        accelerator=topology.accelerator,
        devices=topology.devices,
        num_nodes=topology.num_nodes,
        strategy=topology.strategy,
        precision=topology.precision,
        max_epochs=1 if dry_run else max_epochs,
        limit_train_batches=1 if dry_run else (int(iters) if iters else 1.0),
        limit_val_batches=1 if dry_run else 1.0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=str(results_dir),
        use_distributed_sampler=bool(train.use_distributed_sampler),
        callbacks=[StepReseed(seed), *contract, guard, _progress_bar()],
    )
    checkpointer = contract.checkpoint
    try:
        trainer.fit(system, datamodule=data, ckpt_path=resume_path or None, weights_only=True)
    finally:
        # After fit (or its interruption) current_epoch counts completed epochs, which is also TAO's index
        # of the epoch an interruption broke off.
        progress.epoch, progress.step = int(trainer.current_epoch), int(trainer.global_step)
        _wait_for_other_ranks(trainer)
    completed = int(trainer.current_epoch)
    kpi = dict(system.last_validation or {})
    kpi.update({"train_loss": system.last_train_loss, "lr": system.current_lr()})
    stopped_early = contract.early_stop.triggered
    if dry_run:
        message = "Dry run finished: one training and one validation batch ran; no checkpoint written."
    elif stopped_early:
        message = f"Training stopped at EARLY_STOP_EPOCH={early_stop} (epoch {completed}/{max_epochs})."
    else:
        message = f"Training finished: {completed}/{max_epochs} epochs."
    if checkpointer.last_path is not None:
        message += f" Last checkpoint: {checkpointer.last_path.name}."
    last_epoch = completed - 1 if completed > 0 else None  # TAO index of the last epoch trained
    writer.write(SUCCESS, message, epoch=last_epoch, step=int(trainer.global_step), kpi=kpi)


def _wait_for_other_ranks(trainer: L.Trainer, timeout_s: float = 300.0) -> None:
    """On the process that launched the other local ranks: wait for them to exit, so the run ends (and the
    engine sees it end) only when every rank has stopped; a rank still alive after `timeout_s` is killed."""
    import subprocess

    procs = list(getattr(trainer.strategy.launcher, "procs", None) or [])
    for proc in procs:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("rank process %s did not exit %.0f s after training ended; killing it", proc.pid, timeout_s)
            proc.kill()
            proc.wait()


def _write_model_args(cfg: ExperimentConfig, results_dir: Path, enabled: bool) -> None:
    """Log the resolved constructor arguments next to the run (what was actually built)."""
    if not enabled:
        return
    from mask2former.model.build import model_constructor_args

    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "model_args.json").write_text(json.dumps(model_constructor_args(cfg), indent=2, sort_keys=True))
