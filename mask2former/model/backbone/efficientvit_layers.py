"""Building blocks of EfficientViT (Cai et al., ICCV 2023): conv units, MBConv variants and LiteMLA.

Every module keeps the attribute names of the released EfficientViT code (`conv`/`norm`,
`depth_conv`/`point_conv`, `inverted_conv`, `spatial_conv`, `conv1`/`conv2`, `qkv`/`aggreg`/`proj`,
`context_module`/`local_module`, `main`, `op_list`), so a released state dict maps onto ours key for
key (see `efficientvit_checkpoint.py`). Activations and norms that the release builds as "None"
are simply absent here too, which is what keeps the key sets equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor, nn

ACTIVATIONS = ("relu", "hswish", "gelu")


def make_activation(name: str | None) -> nn.Module | None:
    """The activation named like the release's config strings; tanh-approximated GELU as in the release."""
    if name is None:
        return None
    if name == "relu":
        return nn.ReLU()
    if name == "hswish":
        return nn.Hardswish()
    if name == "gelu":
        return nn.GELU(approximate="tanh")
    raise ValueError(f"activation {name!r} is not one of {ACTIVATIONS}")


class ConvLayer(nn.Module):
    """Conv2d ('same' padding) -> optional BatchNorm -> optional activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        *,
        groups: int = 1,
        bias: bool = False,
        norm: bool = True,
        act: str | None = None,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2,
                              groups=groups, bias=bias)
        self.norm = nn.BatchNorm2d(out_channels) if norm else None
        self.act = make_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


def _triple(value: bool | Sequence[bool], n: int) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


class DSConv(nn.Module):
    """Depthwise 3x3 (with activation) then pointwise 1x1 (linear): the B-series stem block."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, act: str) -> None:
        super().__init__()
        self.depth_conv = ConvLayer(in_channels, in_channels, 3, stride, groups=in_channels, act=act)
        self.point_conv = ConvLayer(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.point_conv(self.depth_conv(x))


class ResBlock(nn.Module):
    """Two full 3x3 convs (the first with activation): the L-series stem block."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, act: str) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3, stride, act=act)
        self.conv2 = ConvLayer(in_channels, out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x))


class MBConv(nn.Module):
    """Inverted bottleneck: 1x1 expand -> depthwise 3x3 (stride) -> 1x1 project (linear).

    `fewer_norm` (the release's choice in the attention stages) drops the first two BatchNorms and
    gives those two convs a bias instead.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, expand_ratio: float, act: str,
                 fewer_norm: bool = False) -> None:
        super().__init__()
        mid = round(in_channels * expand_ratio)
        self.inverted_conv = ConvLayer(in_channels, mid, 1, bias=fewer_norm, norm=not fewer_norm, act=act)
        self.depth_conv = ConvLayer(mid, mid, 3, stride, groups=mid, bias=fewer_norm, norm=not fewer_norm, act=act)
        self.point_conv = ConvLayer(mid, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


class FusedMBConv(nn.Module):
    """Fused inverted bottleneck: full 3x3 expand (stride) -> 1x1 project (linear); the L-series early stages."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, expand_ratio: float, act: str) -> None:
        super().__init__()
        mid = round(in_channels * expand_ratio)
        self.spatial_conv = ConvLayer(in_channels, mid, 3, stride, act=act)
        self.point_conv = ConvLayer(mid, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.point_conv(self.spatial_conv(x))


class LiteMLA(nn.Module):
    """Lightweight multi-scale linear attention (ReLU kernel).

    A 1x1 conv makes q, k, v for `heads = channels // head_dim` heads; each scale in `scales` adds
    a copy aggregated by a depthwise `scale`x`scale` conv plus a grouped 1x1 conv (nearby tokens'
    q/k/v mixed), doubling the heads per extra scale. Attention is linear in the number of tokens:
    out = (v k^T) q / (1^T k^T q), the normaliser being the sum over tokens; for maps with at most
    `head_dim` tokens the quadratic form (k^T q normalised over keys) is cheaper and is used, as in
    the release. The attention runs in fp32 under autocast (the division is unstable in half).
    """

    def __init__(self, channels: int, *, head_dim: int, scales: Sequence[int] = (5,), eps: float = 1e-15) -> None:
        super().__init__()
        heads = channels // head_dim
        if heads < 1:
            raise ValueError(f"LiteMLA: {channels} channels give no head of dim {head_dim}")
        total = heads * head_dim
        self.head_dim = head_dim
        self.eps = eps
        self.qkv = ConvLayer(channels, 3 * total, 1, norm=False)
        self.aggreg = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(3 * total, 3 * total, scale, padding=scale // 2, groups=3 * total, bias=False),
                nn.Conv2d(3 * total, 3 * total, 1, groups=3 * heads, bias=False),
            )
            for scale in scales
        )
        self.proj = ConvLayer(total * (1 + len(scales)), channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        qkv = self.qkv(x)
        qkv = torch.cat([qkv] + [aggregate(qkv) for aggregate in self.aggreg], dim=1)  # [B, 3*d*h_all, H, W]
        batch, _, height, width = qkv.shape
        with _full_precision(qkv.device.type):
            # channels are per head [q(d) k(d) v(d)]: [B, 3*d*h, H, W] -> [B, h, 3*d, H*W]
            grouped = qkv.float().reshape(batch, -1, 3 * self.head_dim, height * width)
            q, k, v = grouped.split(self.head_dim, dim=2)
            q, k = torch.relu(q), torch.relu(k)
            if height * width > self.head_dim:
                out = self._linear(q, k, v)
            else:
                out = self._quadratic(q, k, v)
        # [B, h, d, H*W] -> [B, h*d, H, W]
        out = out.reshape(batch, -1, height, width).to(qkv.dtype)
        return self.proj(out)

    def _linear(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q, k, v: [B, h, d, N] -> [B, h, d, N] in O(N d^2)."""
        context = v @ k.transpose(-1, -2)  # [B, h, d_v, d_k]
        numerator = context @ q  # [B, h, d_v, N]
        denominator = k.sum(dim=-1, keepdim=True).transpose(-1, -2) @ q  # [B, h, 1, N]
        return numerator / (denominator + self.eps)

    def _quadratic(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q, k, v: [B, h, d, N] -> [B, h, d, N] through the explicit [N, N] attention map."""
        scores = k.transpose(-1, -2) @ q  # [B, h, N_k, N_q]
        scores = scores / (scores.sum(dim=2, keepdim=True) + self.eps)
        return v @ scores


def _full_precision(device_type: str) -> AbstractContextManager:
    """Autocast switched off where it is on (no-op otherwise, e.g. on the meta device or in export)."""
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return nullcontext()


class ResidualBlock(nn.Module):
    """`main(x) + x` when `shortcut`, else `main(x)` (the downsampling first block of a stage)."""

    def __init__(self, main: nn.Module, *, shortcut: bool) -> None:
        super().__init__()
        self.main = main
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        out = self.main(x)
        return out + x if self.shortcut else out


class EfficientViTBlock(nn.Module):
    """Global context (LiteMLA) then local mixing (MBConv), each residual."""

    def __init__(self, channels: int, *, head_dim: int, expand_ratio: float, act: str) -> None:
        super().__init__()
        self.context_module = ResidualBlock(LiteMLA(channels, head_dim=head_dim), shortcut=True)
        self.local_module = ResidualBlock(
            MBConv(channels, channels, expand_ratio=expand_ratio, act=act, fewer_norm=True), shortcut=True
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.local_module(self.context_module(x))


class OpSequential(nn.Module):
    """A list of modules applied in order, stored as `op_list` like the release."""

    def __init__(self, ops: Sequence[nn.Module]) -> None:
        super().__init__()
        self.op_list = nn.ModuleList(ops)

    def forward(self, x: Tensor) -> Tensor:
        for op in self.op_list:
            x = op(x)
        return x
