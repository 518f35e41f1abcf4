"""Small building blocks shared by the pixel decoder and the transformer decoder.

Kept apart so both decoders (and the ONNX export later) use one definition of the sine position
encoding, the conv+norm unit and the prediction MLP.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

#: Norm names the pixel decoder accepts ("" and "none" both mean "no normalisation").
NORM_CHOICES = ("GN", "BN", "SyncBN", "none", "")

#: Channels per group are derived from this many groups, as in detectron2's "GN".
GN_NUM_GROUPS = 32


def make_norm(norm: str, channels: int) -> nn.Module | None:
    """Return the normalisation layer named `norm` for `channels` channels, or None for no norm.

    GroupNorm uses 32 groups (detectron2's convention), so `channels` must divide by 32.
    """
    if norm in ("", "none"):
        return None
    if norm == "GN":
        if channels % GN_NUM_GROUPS:
            raise ValueError(f"GroupNorm needs channels divisible by {GN_NUM_GROUPS}, got {channels}")
        return nn.GroupNorm(GN_NUM_GROUPS, channels)
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    if norm == "SyncBN":
        # Falls back to plain batch norm when no process group is running.
        return nn.SyncBatchNorm(channels)
    raise ValueError(f"unknown norm {norm!r}; allowed: {NORM_CHOICES}")


class Conv2dNorm(nn.Conv2d):
    """A conv followed by an optional norm and activation, named like detectron2's `Conv2d`.

    Parameters keep the names `weight`, `bias`, `norm.*` so checkpoints of the original
    Mask2Former pixel decoder (`adapter_1.weight`, `adapter_1.norm.weight`, ...) map one to one.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        padding: int = 0,
        bias: bool = True,
        norm: nn.Module | None = None,
        activation: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self.norm = norm
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


def c2_xavier_fill(module: nn.Conv2d | nn.Linear) -> None:
    """Caffe2's "XavierFill" (uniform, fan-in) used by detectron2 for the pixel decoder convs."""
    nn.init.kaiming_uniform_(module.weight, a=1)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class PositionEmbeddingSine(nn.Module):
    """DETR's 2-D sine/cosine position encoding, normalised to [0, 2*pi] over the feature map.

    Output: [B, 2 * num_pos_feats, H, W] (y features first, then x). Computed from `arange`, not a
    cumulative sum over a mask, because the model never feeds padding masks here and arange
    exports to ONNX as a constant-shaped op.
    """

    def __init__(self, num_pos_feats: int, *, temperature: float = 10000.0, scale: float = 2 * math.pi) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"num_pos_feats must be even (sin/cos pairs), got {num_pos_feats}")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        batch, _, height, width = x.shape
        eps = 1e-6
        y_embed = torch.arange(1, height + 1, dtype=torch.float32, device=x.device)
        x_embed = torch.arange(1, width + 1, dtype=torch.float32, device=x.device)
        y_embed = y_embed / (height + eps) * self.scale
        x_embed = x_embed / (width + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_y = y_embed[:, None] / dim_t  # [H, F]
        pos_x = x_embed[:, None] / dim_t  # [W, F]
        # Interleave sin (even feature) and cos (odd feature): [L, F/2, 2] -> [L, F]
        pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
        pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
        # Broadcast to a grid: [H, W, F] each, then channels first: [2F, H, W]
        pos = torch.cat(
            (pos_y[:, None, :].expand(height, width, -1), pos_x[None, :, :].expand(height, width, -1)), dim=2
        ).permute(2, 0, 1)
        return pos.unsqueeze(0).expand(batch, -1, -1, -1).to(x.dtype)


class MLP(nn.Module):
    """A plain MLP with ReLU between layers (`layers.0`, `layers.1`, ... like the original)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out))

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = F.relu(x)
        return x
