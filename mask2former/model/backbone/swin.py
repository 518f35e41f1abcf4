"""Swin Transformer backbone returning multi-scale feature maps `res2`..`res5` (strides 4..32).

Follows the Swin design used by Mask2Former (shifted windows, relative position bias, patch
merging, stochastic depth, optional absolute position embedding) with the original parameter
names, so the released ImageNet checkpoints load (see `swin_checkpoint.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mask2former.model.backbone.swin_layers import PatchEmbed, SwinStage

FEATURE_NAMES = ("res2", "res3", "res4", "res5")


@dataclass(frozen=True)
class SwinPreset:
    """Width/depth of one released Swin size."""

    embed_dim: int
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int]


#: The four sizes of the original Swin release (tiny is also the TAO spec default).
SWIN_PRESETS: dict[str, SwinPreset] = {
    "tiny": SwinPreset(96, (2, 2, 6, 2), (3, 6, 12, 24)),
    "small": SwinPreset(96, (2, 2, 18, 2), (3, 6, 12, 24)),
    "base": SwinPreset(128, (2, 2, 18, 2), (4, 8, 16, 32)),
    "large": SwinPreset(192, (2, 2, 18, 2), (6, 12, 24, 48)),
}


class SwinTransformer(nn.Module):
    """Swin Transformer feature extractor.

    forward(x: [B, 3, H, W] normalised) -> {name: [B, C_i, ceil(H / 2^(i+2)), ceil(W / 2^(i+2))]}
    for each name in `out_features` (`res{i+2}` is stage i). Any H, W is accepted: the patch
    embedding, each block and each merging pad as needed.
    """

    def __init__(
        self,
        *,
        pretrain_img_size: int = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.2,
        ape: bool = False,
        patch_norm: bool = True,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        out_features: Sequence[str] | None = None,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        num_stages = len(depths)
        if any(not 0 <= i < num_stages for i in out_indices):
            raise ValueError(f"out_indices {list(out_indices)} must lie in [0, {num_stages})")
        if out_features is None:
            out_features = [f"res{i + 2}" for i in out_indices]
        missing = [f for f in out_features if f not in {f"res{i + 2}" for i in out_indices}]
        if missing:
            raise ValueError(f"out_features {missing} are not produced by out_indices {list(out_indices)}")
        self.num_stages = num_stages
        self.out_indices = tuple(out_indices)
        self.out_features = tuple(out_features)
        self.patch_size = patch_size
        self.ape = ape
        self.num_features = [int(embed_dim * 2**i) for i in range(num_stages)]

        self.patch_embed = PatchEmbed(patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim, patch_norm=patch_norm)
        if ape:
            grid = pretrain_img_size // patch_size
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, grid, grid))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        else:
            self.absolute_pos_embed = None
        self.pos_drop = nn.Dropout(drop_rate)

        # Stochastic depth grows linearly from 0 to drop_path_rate over all blocks.
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i in range(num_stages):
            start = sum(depths[:i])
            self.layers.append(
                SwinStage(
                    self.num_features[i], depth=depths[i], num_heads=num_heads[i], window_size=window_size,
                    mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop_rate,
                    attn_drop=attn_drop_rate, drop_path=rates[start:start + depths[i]],
                    downsample=i < num_stages - 1, use_checkpoint=use_checkpoint,
                )
            )
        # One LayerNorm per returned stage, named norm{i} as in the Swin segmentation code.
        for i in self.out_indices:
            self.add_module(f"norm{i}", nn.LayerNorm(self.num_features[i]))
        self.apply(_init_weights)

    @property
    def output_channels(self) -> dict[str, int]:
        """Channels of each returned feature map."""
        return {f"res{i + 2}": self.num_features[i] for i in self.out_indices if f"res{i + 2}" in self.out_features}

    @property
    def output_strides(self) -> dict[str, int]:
        """Stride (input pixels per feature pixel) of each returned feature map."""
        return {f"res{i + 2}": self.patch_size * 2**i for i in self.out_indices if f"res{i + 2}" in self.out_features}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.patch_embed(x)  # [B, C, h, w]
        height, width = x.shape[2], x.shape[3]
        if self.absolute_pos_embed is not None:
            pos = self.absolute_pos_embed
            if pos.shape[2:] != x.shape[2:]:
                pos = F.interpolate(pos, size=(height, width), mode="bicubic", align_corners=False)
            x = x + pos
        x = self.pos_drop(x.flatten(2).transpose(1, 2))  # tokens [B, h*w, C]
        outputs: dict[str, Tensor] = {}
        for i, stage in enumerate(self.layers):
            out, x, next_h, next_w = stage(x, height, width)
            name = f"res{i + 2}"
            if i in self.out_indices and name in self.out_features:
                out = getattr(self, f"norm{i}")(out)
                # tokens back to a map: [B, H*W, C] -> [B, C, H, W]
                outputs[name] = out.view(-1, height, width, self.num_features[i]).permute(0, 3, 1, 2).contiguous()
            height, width = next_h, next_w
        return outputs


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
