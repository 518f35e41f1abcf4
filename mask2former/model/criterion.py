"""Mask2Former's set criterion: match queries to segments, then classify and segment the matches.

Losses per prediction set (final + each auxiliary one under deep supervision):
- `loss_ce`: cross-entropy over K+1 classes for every query; unmatched queries target the
  "no object" class (the last logit), weighted by `no_object_weight`;
- `loss_mask`: sigmoid BCE and `loss_dice`: dice, on points sampled by uncertainty
  (`num_points`, `oversample_ratio`, `importance_sample_ratio`) of the matched masks,
  normalised by the number of target segments in the batch (averaged over processes).
Auxiliary losses carry a `_{i}` suffix (i = 0 for the earliest prediction).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F

from mask2former.model.matcher import HungarianMatcher
from mask2former.model.point_sampling import point_sample, sample_points_by_uncertainty


def sigmoid_ce_loss(logits: Tensor, targets: Tensor, num_masks: Tensor) -> Tensor:
    """Mean BCE over points, summed over masks, / num_masks. [M, P] x [M, P] -> scalar."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(1).sum() / num_masks


def dice_loss(logits: Tensor, targets: Tensor, num_masks: Tensor) -> Tensor:
    """(1 - soft dice) summed over masks, / num_masks. [M, P] x [M, P] -> scalar."""
    probs = logits.sigmoid()
    numerator = 2 * (probs * targets).sum(-1)
    denominator = probs.sum(-1) + targets.sum(-1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks


class SetCriterion(nn.Module):
    """outputs (see `Mask2FormerModel.forward`) + targets (list per image of {"labels": LongTensor[N]
    in [0, K), "masks": BoolTensor[N, H, W]}) -> {loss name: weighted scalar}; sum them for the total."""

    def __init__(
        self,
        *,
        num_classes: int,
        matcher: HungarianMatcher,
        class_weight: float,
        mask_weight: float,
        dice_weight: float,
        no_object_weight: float,
        num_points: int,
        oversample_ratio: float,
        importance_sample_ratio: float,
        deep_supervision: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}")
        if oversample_ratio < 1:
            raise ValueError(f"oversample_ratio must be >= 1, got {oversample_ratio}")
        if not 0 <= importance_sample_ratio <= 1:
            raise ValueError(f"importance_sample_ratio must be in [0, 1], got {importance_sample_ratio}")
        self.num_classes = num_classes
        self.matcher = matcher
        self.weight_dict = {"loss_ce": class_weight, "loss_mask": mask_weight, "loss_dice": dice_weight}
        self.no_object_weight = no_object_weight
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.deep_supervision = deep_supervision
        self.generator = generator
        class_weights = torch.ones(num_classes + 1)
        class_weights[-1] = no_object_weight
        # Not saved with the weights: it is the spec's no_object_weight, which a resumed run (PBT explore) may
        # change; a persistent buffer would be restored from the checkpoint and silently keep the old value.
        self.register_buffer("empty_weight", class_weights, persistent=False)

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, Tensor]:
        losses = self.unweighted_losses(outputs, targets)
        return {name: loss * self.weight_dict[_base_name(name)] for name, loss in losses.items()}

    def unweighted_losses(self, outputs: dict, targets: list[dict]) -> dict[str, Tensor]:
        """The raw loss terms (before class/mask/dice weights)."""
        num_masks = self._num_masks(targets, outputs["pred_logits"].device)
        losses = self._losses_for(outputs, targets, num_masks)
        if self.deep_supervision:
            for i, aux in enumerate(outputs.get("aux_outputs") or []):
                losses.update({f"{k}_{i}": v for k, v in self._losses_for(aux, targets, num_masks).items()})
        return losses

    def _losses_for(self, outputs: dict, targets: list[dict], num_masks: Tensor) -> dict[str, Tensor]:
        indices = self.matcher(outputs, targets)
        return {
            "loss_ce": self.loss_labels(outputs["pred_logits"], targets, indices),
            **self.loss_masks(outputs["pred_masks"], targets, indices, num_masks),
        }

    def loss_labels(self, logits: Tensor, targets: list[dict], indices: list[tuple[Tensor, Tensor]]) -> Tensor:
        """Weighted cross-entropy over [B, Q, K+1]; unmatched queries target class K (no object)."""
        target_classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        batch_idx, query_idx = _prediction_index(indices)
        matched = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)]).to(logits.device)
        target_classes[batch_idx, query_idx] = matched
        # cross_entropy wants classes on dim 1: [B, Q, K+1] -> [B, K+1, Q]
        return F.cross_entropy(logits.float().transpose(1, 2), target_classes, self.empty_weight)

    def loss_masks(
        self, mask_logits: Tensor, targets: list[dict], indices: list[tuple[Tensor, Tensor]], num_masks: Tensor
    ) -> dict[str, Tensor]:
        """BCE + dice on uncertainty-sampled points of the matched (prediction, target) masks."""
        batch_idx, query_idx = _prediction_index(indices)
        pred = mask_logits[batch_idx.to(mask_logits.device), query_idx.to(mask_logits.device)].float()  # [M, h, w]
        if pred.shape[0] == 0:
            zero = mask_logits.sum() * 0.0
            return {"loss_mask": zero, "loss_dice": zero}
        tgt = _stack_padded(
            [t["masks"][j.to(t["masks"].device)].to(device=pred.device, dtype=pred.dtype) for t, (_, j) in zip(targets, indices)]
        )  # [M, H, W]
        with torch.no_grad():
            coords = sample_points_by_uncertainty(
                pred[:, None], num_points=self.num_points, oversample_ratio=self.oversample_ratio,
                importance_sample_ratio=self.importance_sample_ratio, generator=self.generator,
            )
            point_labels = point_sample(tgt[:, None], coords)[:, 0]  # [M, P]
        point_logits = point_sample(pred[:, None], coords)[:, 0]  # [M, P]
        return {
            "loss_mask": sigmoid_ce_loss(point_logits, point_labels, num_masks),
            "loss_dice": dice_loss(point_logits, point_labels, num_masks),
        }

    @staticmethod
    def _num_masks(targets: list[dict], device: torch.device) -> Tensor:
        """Target segments per process (averaged over processes), at least 1."""
        count = torch.as_tensor(float(sum(len(t["labels"]) for t in targets)), device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(count)
            count = count / dist.get_world_size()
        return torch.clamp(count, min=1)


def _base_name(name: str) -> str:
    """"loss_dice_3" -> "loss_dice" (auxiliary losses share the weight of their kind)."""
    head, _, tail = name.rpartition("_")
    return head if tail.isdigit() else name


def _prediction_index(indices: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    batch = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
    query = torch.cat([src for src, _ in indices])
    return batch, query


def _stack_padded(masks: list[Tensor]) -> Tensor:
    """Concatenate [N_i, H_i, W_i] mask stacks, zero-padding each to the largest H and W."""
    height = max(m.shape[-2] for m in masks)
    width = max(m.shape[-1] for m in masks)
    padded = [F.pad(m, (0, width - m.shape[-1], 0, height - m.shape[-2])) if m.shape[-2:] != (height, width) else m
              for m in masks]
    return torch.cat(padded, 0)
