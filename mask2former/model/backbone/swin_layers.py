"""The pieces of a Swin Transformer: window attention, blocks, patch merging and stages.

Parameter names follow the original Swin release (`attn.qkv`, `attn.relative_position_bias_table`,
`norm1`, `mlp.fc1`, `downsample.reduction`, ...) so its checkpoints load without renaming.
Tokens travel as [B, H*W, C] between blocks; each block pads its map to whole windows itself, so
any input size works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils import checkpoint as activation_checkpoint

#: Logit added between tokens of different regions inside a shifted window (as the original).
_MASKED_LOGIT = -100.0


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample with probability `drop_prob`."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        # One Bernoulli draw per sample, broadcast over the other dims.
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout."""

    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """Cut [B, H, W, C] (H, W multiples of the window) into windows [B*nW, ws, ws, C]."""
    b, h, w, c = x.shape
    # [B, H/ws, ws, W/ws, ws, C] -> [B, H/ws, W/ws, ws, ws, C] -> windows
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)


def window_reverse(windows: Tensor, window_size: int, height: int, width: int) -> Tensor:
    """Inverse of `window_partition`: [B*nW, ws, ws, C] -> [B, H, W, C]."""
    c = windows.shape[-1]
    # [B, H/ws, W/ws, ws, ws, C] -> [B, H/ws, ws, W/ws, ws, C] -> map
    x = windows.view(-1, height // window_size, width // window_size, window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, c)


def relative_position_index(window_size: int) -> Tensor:
    """Index into the ((2ws-1)^2)-row bias table for every (query, key) pair of a window: [ws^2, ws^2]."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
    coords = coords.flatten(1)  # [2, ws*ws]
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # [ws*ws, ws*ws, 2] dy, dx
    rel = rel + (window_size - 1)  # shift to [0, 2ws-2]
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]


def shifted_window_mask(height: int, width: int, window_size: int, shift: int, device: torch.device) -> Tensor:
    """Additive attention mask [nW, ws^2, ws^2] for a cyclically shifted, window-padded map.

    After the shift, a window may hold tokens from up to 3x3 originally distant regions; tokens
    only attend within their own region. Regions along an axis of length L are
    [0, L-ws), [L-ws, L-shift), [L-shift, L).
    """
    hs = torch.arange(height, device=device)
    ws = torch.arange(width, device=device)
    region_h = (hs >= height - window_size).long() + (hs >= height - shift).long()
    region_w = (ws >= width - window_size).long() + (ws >= width - shift).long()
    region = (region_h[:, None] * 3 + region_w[None, :]).float()  # [H, W]
    windows = window_partition(region[None, :, :, None], window_size).flatten(1)  # [nW, ws*ws]
    different = windows[:, None, :] != windows[:, :, None]
    return torch.zeros(different.shape, device=device).masked_fill(different, _MASKED_LOGIT)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative position bias."""

    def __init__(
        self,
        dim: int,
        *,
        window_size: int,
        num_heads: int,
        qkv_bias: bool,
        qk_scale: float | None,
        attn_drop: float,
        proj_drop: float,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = qk_scale if qk_scale is not None else head_dim**-0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        # Derived from window_size alone, so not saved (release checkpoints' copies are dropped on load).
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: [B*nW, N, C] with N = ws^2; mask: [nW, N, N] additive or None."""
        bw, n, c = x.shape
        # [B*nW, N, 3C] -> [3, B*nW, heads, N, head_dim]
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)  # [B*nW, heads, N, N]
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        bias = bias.view(n, n, -1).permute(2, 0, 1)  # [heads, N, N]
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            # Split the window batch to add the per-window mask: [B, nW, heads, N, N]
            attn = attn.view(-1, nw, self.num_heads, n, n) + mask[None, :, None, :, :]
            attn = attn.view(-1, self.num_heads, n, n)
        attn = self.attn_drop(attn.softmax(dim=-1))
        out = (attn @ v).transpose(1, 2).reshape(bw, n, c)  # heads back into channels
        return self.proj_drop(self.proj(out))


class SwinBlock(nn.Module):
    """(Shifted-)window attention + MLP, each a pre-norm residual branch with stochastic depth."""

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        window_size: int,
        shift_size: int,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: float | None,
        drop: float,
        attn_drop: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        if not 0 <= shift_size < max(window_size, 1):
            raise ValueError(f"shift_size must be in [0, window_size), got {shift_size}")
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(
            dim, window_size=window_size, num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
            attn_drop=attn_drop, proj_drop=drop,
        )
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor, height: int, width: int, attn_mask: Tensor | None) -> Tensor:
        """x: [B, H*W, C]; attn_mask: the stage's shifted-window mask (used only if this block shifts)."""
        b, _, c = x.shape
        ws = self.window_size
        shortcut = x
        x = self.norm1(x).view(b, height, width, c)
        # Pad right/bottom to whole windows (after the norm, so padding tokens are exact zeros).
        pad_b = (ws - height % ws) % ws
        pad_r = (ws - width % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = height + pad_b, width + pad_r
        if self.shift_size > 0:
            x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
            mask = attn_mask
        else:
            mask = None
        windows = window_partition(x, ws).reshape(-1, ws * ws, c)  # [B*nW, ws*ws, C]; may be non-contiguous
        windows = self.attn(windows, mask)
        x = window_reverse(windows.view(-1, ws, ws, c), ws, hp, wp)
        if self.shift_size > 0:
            x = torch.roll(x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        x = x[:, :height, :width, :].reshape(b, height * width, c)
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Halve the resolution and double the channels: concat 2x2 neighbours, norm, project 4C -> 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        """x: [B, H*W, C] -> [B, ceil(H/2)*ceil(W/2), 2C]."""
        b, _, c = x.shape
        x = x.view(b, height, width, c)
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))  # odd sizes: pad one row/column
        # Order (even row, even col), (odd, even), (even, odd), (odd, odd) as in the release weights.
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        x = x.view(b, -1, 4 * c)
        return self.reduction(self.norm(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection (a strided conv), padding the image to whole patches."""

    def __init__(self, *, patch_size: int, in_chans: int, embed_dim: int, patch_norm: bool) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, 3, H, W] -> [B, C, ceil(H/p), ceil(W/p)]."""
        _, _, h, w = x.shape
        p = self.patch_size
        x = F.pad(x, (0, (p - w % p) % p, 0, (p - h % p) % p))
        x = self.proj(x)
        if self.norm is not None:
            hh, ww = x.shape[2], x.shape[3]
            # LayerNorm over channels: [B, C, h, w] -> [B, h*w, C] -> back
            x = self.norm(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(-1, x.shape[1], hh, ww)
        return x


class SwinStage(nn.Module):
    """`depth` blocks alternating plain and shifted windows, then an optional patch merging."""

    def __init__(
        self,
        dim: int,
        *,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: float | None,
        drop: float,
        attn_drop: float,
        drop_path: Sequence[float],
        downsample: bool,
        use_checkpoint: bool,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim, num_heads=num_heads, window_size=window_size,
                shift_size=0 if i % 2 == 0 else self.shift_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                qk_scale=qk_scale, drop=drop, attn_drop=attn_drop, drop_path=drop_path[i],
            )
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, int, int]:
        """x: [B, H*W, C] -> (stage output [B, H*W, C], next input [B, H'*W', C'], H', W')."""
        ws = self.window_size
        attn_mask = None
        if self.shift_size > 0 and len(self.blocks) > 1:
            # Round up to whole windows (no negative floor division: ONNX Div truncates toward 0).
            hp, wp = (height + ws - 1) // ws * ws, (width + ws - 1) // ws * ws
            attn_mask = shifted_window_mask(hp, wp, ws, self.shift_size, x.device).to(x.dtype)
        for block in self.blocks:
            if self.use_checkpoint and torch.is_grad_enabled():
                x = activation_checkpoint.checkpoint(block, x, height, width, attn_mask, use_reentrant=False)
            else:
                x = block(x, height, width, attn_mask)
        if self.downsample is None:
            return x, x, height, width
        return x, self.downsample(x, height, width), (height + 1) // 2, (width + 1) // 2
