"""The LightningModule that trains a Mask2Former `nn.Module` (Lightning's system/model split).

The system owns no architecture: it receives the model, the criterion and a validation suite (built at
the composition root, `trainer.py`), and adds what training needs around them: one shared step for
train/validation, loss bookkeeping, the optimizer and schedule, gradient clipping and what goes into a
checkpoint besides the weights (the full spec, so evaluate/inference/export can rebuild the model).

Batches are the data package's collate output: `images` float[B, 3, H, W] (normalised, padded),
`targets` `[{"labels": Long[N], "masks": Bool[N, H, W]}]`, `sem_seg` Long[B, H, W], `metas` list.
The model returns `{"pred_logits": [B, Q, K+1], "pred_masks": [B, Q, H/4, W/4], "aux_outputs": [...]}`
and the criterion a dict of already-weighted losses whose sum is the training objective.

`train.optim.monitor_name` (TAO: "the metric monitored") names the loss this run reports as its
monitored value: `<name>=<value>` is appended to every status.json RUNNING message and each checkpoint
records `checkpoint["monitor"] = {"name", "value"}`. Neither schedule we support is metric-driven, so
it does not change the learning rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from mask2former.training.optim import build_adamw, build_scheduler, plan_param_groups

CHECKPOINT_FORMAT = "mask2former-lightning/1"
EVALUATION_SEED = 20_240_611  # seeds the criterion's point sampling in validation (batch i: seed + i)


@dataclass(frozen=True)
class OptimSettings:
    """`train.optim` (plus what the schedule needs), read once at the composition root."""

    lr: float
    weight_decay: float
    backbone_multiplier: float
    momentum: float
    scheduler: str
    milestones: tuple[int, ...]
    gamma: float
    monitor_name: str = "train_loss"
    backbone_prefixes: tuple[str, ...] = ("backbone.",)


@dataclass(frozen=True)
class ClipSettings:
    """`train.clip_grad_norm` / `clip_grad_type` / `clip_grad_norm_type`.

    kind "full": one norm over all trainable parameters together (TAO's full-model clipping);
    "norm": the same, separately per optimizer parameter group; "value": clamp each gradient element.
    `max_norm <= 0` disables clipping.
    """

    max_norm: float
    kind: str = "full"
    norm_type: float = 2.0


class ValidationSuite(Protocol):
    """What the system needs from evaluation: accumulate per batch, compute once per validation."""

    def reset(self) -> None: ...

    def update(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> None: ...

    def compute(self) -> dict[str, float]: ...


class Mask2FormerSystem(L.LightningModule):
    """Trains `model` with `criterion`; validates with `validation` (see module docstring).

    Args:
        model: the Mask2Former `nn.Module` (images -> outputs dict).
        criterion: `nn.Module` (outputs, targets) -> dict of weighted losses.
        spec: the full experiment spec dict, stored in every checkpoint under `spec`.
        optim: optimizer and schedule settings.
        clip: gradient clipping settings.
        validation: a `ValidationSuite`, or None to validate losses only.
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        *,
        spec: Mapping[str, Any],
        optim: OptimSettings,
        clip: ClipSettings,
        validation: ValidationSuite | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion
        self.spec = dict(spec)
        self.optim_settings = optim
        self.clip_settings = clip
        self.validation = validation
        # MeanMetric syncs across processes on compute(); as child modules they follow the device.
        self.train_loss_meter = MeanMetric()
        self.val_loss_meter = MeanMetric()
        self.last_validation: dict[str, float | None] | None = None
        self.last_train_loss: float | None = None

    # -- steps ----------------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        return self.model(images)

    def _shared_step(self, batch: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor], torch.Tensor]:
        """Forward + criterion; the one code path both training and validation run."""
        outputs = self.model(batch["images"])
        losses = self.criterion(outputs, batch["targets"])
        total = torch.stack([value.float() for value in losses.values()]).sum()
        return outputs, losses, total

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        _, losses, total = self._shared_step(batch)
        batch_size = int(batch["images"].shape[0])
        self.train_loss_meter.update(total.detach(), weight=batch_size)
        self.log("train_loss", total.detach(), on_step=True, on_epoch=False, prog_bar=True, batch_size=batch_size)
        self.log_dict({f"loss/{name}": value.detach() for name, value in losses.items()}, on_step=True,
                      on_epoch=False, batch_size=batch_size)
        return total

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        # Evaluation is a function of (checkpoint, data) only, val_loss included: the criterion samples its
        # points from the global generator, so each batch draws from one seeded by its index. The fork leaves
        # the training stream exactly where it was (a validation mid-run changes nothing that follows).
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(EVALUATION_SEED + batch_idx)
            outputs, _, total = self._shared_step(batch)
        self.val_loss_meter.update(total.detach(), weight=int(batch["images"].shape[0]))
        if self.validation is not None:
            self.validation.update(outputs, batch)

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    # -- epoch bookkeeping ---------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self.train_loss_meter.reset()

    def epoch_train_loss(self) -> float | None:
        """Mean training loss of the current epoch so far (synced across processes)."""
        if int(self.train_loss_meter.update_count) == 0:
            return self.last_train_loss
        value = float(self.train_loss_meter.compute())
        self.last_train_loss = value
        return value

    def on_validation_epoch_start(self) -> None:
        self.val_loss_meter.reset()
        if self.validation is not None:
            self.validation.reset()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.val_loss_meter.reset()
            return
        metrics: dict[str, float | None] = {}  # val_loss is None when no validation batch ran
        if self.validation is not None:
            metrics.update(self.validation.compute())
        metrics["val_loss"] = float(self.val_loss_meter.compute()) if int(self.val_loss_meter.update_count) else None
        self.last_validation = metrics
        loggable = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        # Values are already reduced over processes; log them as they are.
        self.log_dict(loggable, prog_bar=True, sync_dist=False, rank_zero_only=True)

    # -- monitored value, learning rate -----------------------------------------------------------------
    def monitored_value(self) -> tuple[str, float | None]:
        """(monitor_name, its latest value): `train_loss` of the running epoch or the last `val_loss`."""
        name = self.optim_settings.monitor_name
        if name == "val_loss":
            value = (self.last_validation or {}).get("val_loss")
        else:
            value = self.last_train_loss
        return name, value

    def current_lr(self) -> float | None:
        """The head (non-backbone) learning rate in effect now; the backbone's is this × backbone_multiplier."""
        if self._trainer is None or not self.trainer.optimizers:
            return None
        groups = self.trainer.optimizers[0].param_groups
        for group in groups:
            if str(group.get("name", "")).startswith("head"):
                return float(group["lr"])
        return float(groups[0]["lr"]) / (self.optim_settings.backbone_multiplier or 1.0)

    # -- optimisation ---------------------------------------------------------------------------------
    def on_train_start(self) -> None:
        """After a resume, the spec's optimizer settings win over those restored from the checkpoint.

        Lightning restores the optimizer's param groups (lr, weight decay, betas) and the scheduler's base
        lrs from the checkpoint, so without this a resumed trial whose spec changed them (PBT's explore,
        or a user continuing with a new lr) would silently train with the old values. The schedule's
        position (step count) and AdamW's moment estimates are kept.
        """
        if not self.trainer.ckpt_path or not self.trainer.optimizers:
            return
        settings = self.optim_settings
        plans = {plan.name: plan for plan in plan_param_groups(
            self.model, lr=settings.lr, weight_decay=settings.weight_decay,
            backbone_multiplier=settings.backbone_multiplier, backbone_prefixes=settings.backbone_prefixes)}
        optimizer = self.trainer.optimizers[0]
        schedulers = [config.scheduler for config in self.trainer.lr_scheduler_configs]
        for index, group in enumerate(optimizer.param_groups):
            plan = plans.get(group.get("name"))
            if plan is None:
                continue
            group["initial_lr"] = plan.lr
            group["weight_decay"] = plan.weight_decay
            group["betas"] = (settings.momentum, group["betas"][1])
            for scheduler in schedulers:
                if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
                    scheduler.base_lrs[index] = plan.lr
                    group["lr"] = plan.lr * scheduler.lr_lambdas[index](scheduler.last_epoch)

    def configure_optimizers(self) -> dict[str, Any]:
        settings = self.optim_settings
        optimizer = build_adamw(
            self.model, lr=settings.lr, weight_decay=settings.weight_decay,
            backbone_multiplier=settings.backbone_multiplier, momentum=settings.momentum,
            backbone_prefixes=settings.backbone_prefixes,
        )
        total_steps = int(self.trainer.estimated_stepping_batches)
        max_epochs = max(1, int(self.trainer.max_epochs or 1))
        steps_per_epoch = max(1, total_steps // max_epochs)
        scheduler = build_scheduler(optimizer, settings.scheduler, milestones=settings.milestones,
                                    gamma=settings.gamma, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1, "name": "lr"}}

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: Any = None,
                                    gradient_clip_algorithm: Any = None) -> None:
        clip = self.clip_settings
        if clip.max_norm is None or clip.max_norm <= 0:
            return
        if clip.kind == "value":
            self.clip_gradients(optimizer, gradient_clip_val=clip.max_norm, gradient_clip_algorithm="value")
            return
        if clip.kind == "full" and clip.norm_type == 2.0:
            # Lightning's path handles sharded (FSDP) parameters as well.
            self.clip_gradients(optimizer, gradient_clip_val=clip.max_norm, gradient_clip_algorithm="norm")
            return
        if clip.kind == "full":
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, clip.max_norm, norm_type=clip.norm_type)
            return
        for group in optimizer.param_groups:  # kind == "norm": one norm per group
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                torch.nn.utils.clip_grad_norm_(params, clip.max_norm, norm_type=clip.norm_type)

    # -- checkpoints -----------------------------------------------------------------------------------
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints written before the criterion's class weights stopped being saved still load; the
        spec's `no_object_weight` wins over the stored one (it is a hot parameter)."""
        for key in [k for k in checkpoint.get("state_dict", {}) if k.startswith("criterion.")]:
            checkpoint["state_dict"].pop(key)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["spec"] = self.spec
        checkpoint["format"] = CHECKPOINT_FORMAT
        name, value = self.monitored_value()
        checkpoint["monitor"] = {"name": name, "value": value}
        if self.last_validation is not None:
            checkpoint["validation"] = dict(self.last_validation)
