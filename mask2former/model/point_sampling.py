"""Point sampling for the mask losses (PointRend style), in normalised [0, 1] coordinates.

Masks are compared on a few thousand points instead of every pixel: predictions and targets of
any resolution are read at the same normalised points by bilinear interpolation.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def point_sample(inputs: Tensor, coords: Tensor) -> Tensor:
    """Bilinearly read `inputs` [N, C, H, W] at `coords` [N, P, 2] (x, y in [0, 1]) -> [N, C, P]."""
    # grid_sample wants a [N, P, 1, 2] grid in [-1, 1]; drop the dummy width afterwards.
    grid = (2.0 * coords - 1.0).unsqueeze(2).to(inputs.dtype)
    return F.grid_sample(inputs, grid, mode="bilinear", padding_mode="zeros", align_corners=False).squeeze(3)


def uncertainty(logits: Tensor) -> Tensor:
    """Higher where the mask logit is closer to 0 (the decision boundary)."""
    return -logits.abs()


def sample_points_by_uncertainty(
    logits: Tensor,
    *,
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pick `num_points` points per mask, favouring uncertain ones.

    Draw `num_points * oversample_ratio` uniform candidates, keep the
    `importance_sample_ratio * num_points` most uncertain, fill the rest uniformly.
    logits: [N, 1, H, W] -> coords [N, num_points, 2].
    """
    n = logits.shape[0]
    num_candidates = int(num_points * oversample_ratio)
    candidates = torch.rand(n, num_candidates, 2, device=logits.device, generator=generator)
    scores = uncertainty(point_sample(logits, candidates))[:, 0, :]  # [N, candidates]
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain
    top = torch.topk(scores, k=num_uncertain, dim=1)[1]  # [N, num_uncertain]
    chosen = torch.gather(candidates, 1, top.unsqueeze(-1).expand(-1, -1, 2))
    if num_random > 0:
        extra = torch.rand(n, num_random, 2, device=logits.device, generator=generator)
        chosen = torch.cat([chosen, extra], dim=1)
    return chosen
