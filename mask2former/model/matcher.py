"""Hungarian matching of predicted queries to ground-truth segments.

Cost = cost_class * (-p(target class)) + cost_mask * sigmoid BCE + cost_dice * dice, the mask
terms measured on `num_points` uniformly random points shared by all pairs of an image (the
same points for predictions and targets, as in Mask2Former). The assignment is
`scipy.optimize.linear_sum_assignment` on the cost matrix.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torch.nn import functional as F

from mask2former.model.point_sampling import point_sample


def pairwise_sigmoid_ce(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean BCE over points of every (prediction, target) pair: [Q, P] x [N, P] -> [Q, N]."""
    points = logits.shape[1]
    pos = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    neg = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    return (pos @ targets.T + neg @ (1 - targets).T) / points


def pairwise_dice(logits: Tensor, targets: Tensor) -> Tensor:
    """1 - soft dice of every pair: [Q, P] x [N, P] -> [Q, N]."""
    probs = logits.sigmoid()
    numerator = 2 * probs @ targets.T
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


class HungarianMatcher(nn.Module):
    """outputs {"pred_logits": [B, Q, K+1], "pred_masks": [B, Q, h, w]} + targets (list per image of
    {"labels": [N], "masks": [N, H, W]}) -> list per image of (query indices, target indices)."""

    def __init__(
        self,
        *,
        cost_class: float = 1.0,
        cost_mask: float = 1.0,
        cost_dice: float = 1.0,
        num_points: int = 12544,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if min(cost_class, cost_mask, cost_dice) < 0 or cost_class == cost_mask == cost_dice == 0:
            raise ValueError(f"costs must be >= 0 and not all 0, got {cost_class}, {cost_mask}, {cost_dice}")
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points
        self.generator = generator

    @torch.no_grad()
    def forward(self, outputs: dict, targets: list[dict]) -> list[tuple[Tensor, Tensor]]:
        indices = []
        for b, target in enumerate(targets):
            labels = target["labels"]
            mask_logits = outputs["pred_masks"][b]
            # Drawn for every image, even one without targets, so the random stream does not
            # depend on the data (reproducible with a seeded generator).
            coords = torch.rand(1, self.num_points, 2, device=mask_logits.device, generator=self.generator)
            if labels.numel() == 0:
                empty = torch.empty(0, dtype=torch.int64)
                indices.append((empty, empty.clone()))
                continue
            cost = self.cost_matrix(outputs["pred_logits"][b], mask_logits, labels, target["masks"], coords)
            # Unusable entries (NaN/inf from a diverged model) become the largest cost instead of crashing.
            big = torch.finfo(cost.dtype).max
            cost = torch.nan_to_num(cost, nan=big, posinf=big, neginf=big)
            rows, cols = linear_sum_assignment(cost.cpu().numpy())
            indices.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return indices

    def cost_matrix(self, logits: Tensor, mask_logits: Tensor, labels: Tensor, masks: Tensor, coords: Tensor) -> Tensor:
        """[Q, K+1], [Q, h, w], [N], [N, H, W], points [1, P, 2] -> cost [Q, N] (float32)."""
        probs = logits.float().softmax(-1)
        cost_class = -probs[:, labels]
        pred = point_sample(mask_logits.float()[:, None], coords.expand(mask_logits.shape[0], -1, -1))[:, 0]
        tgt = point_sample(masks.float()[:, None], coords.expand(masks.shape[0], -1, -1))[:, 0]
        return (
            self.cost_mask * pairwise_sigmoid_ce(pred, tgt)
            + self.cost_class * cost_class
            + self.cost_dice * pairwise_dice(pred, tgt)
        )
