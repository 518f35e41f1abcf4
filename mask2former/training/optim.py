"""AdamW parameter groups and learning-rate schedules for Mask2Former training.

Parameter-group rule (what gets which learning rate and weight decay), following the published
Mask2Former recipe:

* learning rate: parameters under a backbone prefix (default `backbone.`) train at
  `lr * backbone_multiplier`; everything else at `lr`.
* weight decay: `weight_decay` for every trainable parameter EXCEPT
    - parameters owned by normalisation layers (LayerNorm, GroupNorm, BatchNorm*, SyncBatchNorm, ...),
      weights and biases alike;
    - embedding tables: parameters owned by `nn.Embedding` (decoder query features/positions, level
      embeddings) and parameters whose name ends in one of `NO_DECAY_NAMES` (Swin's
      `relative_position_bias_table`, `absolute_pos_embed`, the pixel decoder's `level_embed`, ...).
  Biases of linear/conv layers keep weight decay, as in the original recipe (it sets a zero decay only
  for norms and embeddings).
* frozen parameters (`requires_grad=False`) are left out of the optimizer entirely.

Schedules (both step-based, so a checkpoint written at any step restores the exact learning rate):

* `MultiStep`: lr *= gamma after each milestone EPOCH; milestones are converted to optimizer steps with
  the run's steps per epoch (milestone m fires once m epochs are completed).
* `WarmupPoly` (TAO spells it `Warmuppoly`): a linear warm-up from `WARMUP_START_FACTOR * lr` over the
  first `WARMUP_FRACTION` of all steps, multiplied by a polynomial decay `(1 - step/total) ** POLY_POWER`
  that reaches zero at the last step (detectron2's WarmupPolyLR, which Mask2Former uses).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from skillkit.errors import SpecError

NO_DECAY_NAMES: tuple[str, ...] = (
    "relative_position_bias_table",
    "absolute_pos_embed",
    "pos_embed",
    "level_embed",
    "query_embed",
    "query_feat",
)
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
)

WARMUP_FRACTION = 0.02
WARMUP_START_FACTOR = 0.001
POLY_POWER = 0.9

SCHEDULER_NAMES = ("MultiStep", "WarmupPoly", "Warmuppoly")


@dataclass(frozen=True)
class ParamGroupSpec:
    """One AdamW group: a name for logs and checkpoints, its parameter names, lr and weight decay."""

    name: str
    param_names: tuple[str, ...]
    lr: float
    weight_decay: float


def _no_decay(module: nn.Module, param_name: str) -> bool:
    if isinstance(module, NORM_TYPES) or isinstance(module, nn.Embedding):
        return True
    leaf = param_name.rsplit(".", 1)[-1]
    return leaf in NO_DECAY_NAMES


def plan_param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    backbone_multiplier: float,
    backbone_prefixes: Sequence[str] = ("backbone.",),
) -> list[ParamGroupSpec]:
    """Split the trainable parameters of `model` into up to four groups (backbone/head × decay/no-decay).

    Empty groups are dropped. Each parameter appears in exactly one group, even when shared by modules.
    """
    buckets: dict[tuple[bool, bool], list[str]] = {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for leaf, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full = f"{module_name}.{leaf}" if module_name else leaf
            is_backbone = any(full.startswith(prefix) for prefix in backbone_prefixes)
            decay = not _no_decay(module, full)
            buckets.setdefault((is_backbone, decay), []).append(full)
    groups = []
    for is_backbone in (True, False):
        for decay in (True, False):
            names = buckets.get((is_backbone, decay))
            if not names:
                continue
            groups.append(
                ParamGroupSpec(
                    name=f"{'backbone' if is_backbone else 'head'}_{'decay' if decay else 'no_decay'}",
                    param_names=tuple(names),
                    lr=lr * backbone_multiplier if is_backbone else lr,
                    weight_decay=weight_decay if decay else 0.0,
                )
            )
    return groups


def build_adamw(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    backbone_multiplier: float,
    momentum: float,
    backbone_prefixes: Sequence[str] = ("backbone.",),
) -> torch.optim.AdamW:
    """AdamW over `plan_param_groups`; TAO's `momentum` is AdamW's beta1 (beta2 stays 0.999)."""
    if not 0.0 < momentum < 1.0:
        raise SpecError(f"train.optim.momentum is AdamW's beta1 and must lie in (0, 1), got {momentum!r}.")
    plans = plan_param_groups(
        model, lr=lr, weight_decay=weight_decay, backbone_multiplier=backbone_multiplier,
        backbone_prefixes=backbone_prefixes,
    )
    if not plans:
        raise SpecError("no trainable parameters left: train.freeze froze the whole model.")
    params = dict(model.named_parameters())
    groups = [
        {"params": [params[n] for n in plan.param_names], "lr": plan.lr, "weight_decay": plan.weight_decay,
         "name": plan.name}
        for plan in plans
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)


def multistep_factor(step: int, milestone_steps: Sequence[int], gamma: float) -> float:
    """gamma ** (number of milestones already reached at optimizer step `step`)."""
    return gamma ** bisect.bisect_right(sorted(milestone_steps), step)


def warmup_poly_factor(step: int, total_steps: int, *, warmup_steps: int,
                       start_factor: float = WARMUP_START_FACTOR, power: float = POLY_POWER) -> float:
    """Linear warm-up factor times `(1 - step/total) ** power`; 0 at and after the last step."""
    if step < warmup_steps:
        alpha = step / warmup_steps
        warm = start_factor * (1.0 - alpha) + alpha
    else:
        warm = 1.0
    remaining = max(0.0, 1.0 - step / max(1, total_steps))
    return warm * remaining**power


def build_lr_lambda(
    name: str,
    *,
    milestones: Iterable[int],
    gamma: float,
    steps_per_epoch: int,
    total_steps: int,
):
    """The per-step multiplier function of schedule `name` (see the module docstring)."""
    if name == "MultiStep":
        milestone_steps = [int(m) * steps_per_epoch for m in milestones]
        return lambda step: multistep_factor(step, milestone_steps, gamma)
    if name in ("WarmupPoly", "Warmuppoly"):
        warmup = int(WARMUP_FRACTION * total_steps)
        return lambda step: warmup_poly_factor(step, total_steps, warmup_steps=warmup)
    raise SpecError(f"train.optim.lr_scheduler must be one of {', '.join(SCHEDULER_NAMES)}, got {name!r}.")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    milestones: Iterable[int],
    gamma: float,
    steps_per_epoch: int,
    total_steps: int,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A step-interval LambdaLR implementing schedule `name` for every parameter group."""
    fn = build_lr_lambda(name, milestones=milestones, gamma=gamma, steps_per_epoch=steps_per_epoch,
                         total_steps=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=fn)
