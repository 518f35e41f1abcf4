"""Multi-scale deformable attention (Deformable DETR) in plain PyTorch.

Each query looks at `n_points` learned offsets around its reference point on every level and
mixes the bilinearly sampled values with learned weights. Sampling uses `F.grid_sample` with
float32 grids (in the feature dtype), so the module exports to ONNX without custom CUDA kernels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def ms_deform_attn_sample(
    value: Tensor,
    spatial_shapes: Sequence[tuple[int, int]],
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Weighted sum of bilinear samples over levels and points.

    value: [B, S, heads, D] (S = sum of H_l*W_l, levels concatenated in `spatial_shapes` order)
    sampling_locations: [B, Q, heads, levels, points, 2] as (x, y) in [0, 1]
    attention_weights: [B, Q, heads, levels, points] (softmax over levels*points)
    returns [B, Q, heads*D]
    """
    b, _, heads, d = value.shape
    _, q, _, _, points, _ = sampling_locations.shape
    grids = 2 * sampling_locations - 1  # grid_sample wants [-1, 1]
    per_level = value.split([h * w for h, w in spatial_shapes], dim=1)
    out = value.new_zeros(b * heads, d, q)
    for level, (h, w) in enumerate(spatial_shapes):
        # [B, H*W, heads, D] -> [B, heads, D, H*W] -> [B*heads, D, H, W]
        v = per_level[level].permute(0, 2, 3, 1).reshape(b * heads, d, h, w)
        # [B, Q, heads, P, 2] -> [B, heads, Q, P, 2] -> [B*heads, Q, P, 2]
        g = grids[:, :, :, level].transpose(1, 2).reshape(b * heads, q, points, 2)
        sampled = F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False)  # [B*h, D, Q, P]
        # [B, Q, heads, P] -> [B, heads, Q, P] -> [B*heads, 1, Q, P]
        wts = attention_weights[:, :, :, level].transpose(1, 2).reshape(b * heads, 1, q, points)
        out = out + (sampled * wts).sum(-1)
    # [B*heads, D, Q] -> [B, heads*D, Q] -> [B, Q, heads*D]
    return out.view(b, heads * d, q).transpose(1, 2)


class MSDeformAttn(nn.Module):
    """Deformable attention module; names match the original (`sampling_offsets`, `value_proj`, ...)."""

    def __init__(self, d_model: int, n_levels: int, n_heads: int, n_points: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Start with offsets on a ring (head h points along angle 2*pi*h/heads, point p at radius p+1)."""
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        ring = torch.stack([angles.cos(), angles.sin()], -1)
        ring = ring / ring.abs().max(-1, keepdim=True)[0]  # onto the unit square's border
        ring = ring.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        ring = ring * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(ring.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: Tensor,
        reference_points: Tensor,
        input_flatten: Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
    ) -> Tensor:
        """query: [B, Q, C]; reference_points: [B or 1, Q, levels, 2] in [0, 1];
        input_flatten: [B, S, C]; returns [B, Q, C]."""
        b, q, _ = query.shape
        s = input_flatten.shape[1]
        value = self.value_proj(input_flatten).view(b, s, self.n_heads, self.d_model // self.n_heads)
        offsets = self.sampling_offsets(query).view(b, q, self.n_heads, self.n_levels, self.n_points, 2)
        weights = self.attention_weights(query).view(b, q, self.n_heads, self.n_levels * self.n_points)
        weights = weights.softmax(-1).view(b, q, self.n_heads, self.n_levels, self.n_points)
        # Offsets are in pixels of each level: normalise by (W, H) of that level.
        normalizer = torch.tensor([[w, h] for h, w in spatial_shapes], dtype=query.dtype, device=query.device)
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        out = ms_deform_attn_sample(value, spatial_shapes, locations, weights)
        return self.output_proj(out)
