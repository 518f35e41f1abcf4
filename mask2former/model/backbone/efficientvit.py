"""EfficientViT backbone (B and L series) returning feature maps `res2`..`res5` (strides 4..32).

The eight models TAO's Mask2Former accepts (`model.backbone.efficientvit.name` b0-b3, l0-l3) with
the widths and depths of the released models. Both series start with a stride-2 stem, then four
stages each halving the resolution; stage i of those four is `res{i+2}`, as TAO's wrapper names
them. The last two stages (B) or the last one (L) stack EfficientViT blocks (LiteMLA + MBConv);
the others are convolutional:

- B series (hardswish): stem conv + DSConv blocks; stages of MBConv (expand 4); the attention
  stages open with a fewer-norm MBConv and use `head_dim` 16 (b0, b1) or 32 (b2, b3).
- L series (tanh GELU): stem conv + ResBlocks; two FusedMBConv stages and one fewer-norm MBConv
  stage whose first (downsampling) block expands 16x and the rest 4x; an attention stage opened by
  a 24x MBConv, blocks with MBConv expand 6 and head_dim 32.

Module names follow the release (`input_stem` + `stages[0..3]` for B, `stages[0..4]` for L with
the stem as `stages[0]`), so its checkpoints load key for key (`efficientvit_checkpoint.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils import checkpoint as activation_checkpoint

from mask2former.model.backbone.efficientvit_layers import (
    ConvLayer,
    DSConv,
    EfficientViTBlock,
    FusedMBConv,
    MBConv,
    OpSequential,
    ResBlock,
    ResidualBlock,
)

FEATURE_NAMES = ("res2", "res3", "res4", "res5")
STRIDES = (4, 8, 16, 32)


@dataclass(frozen=True)
class EfficientViTPreset:
    """One released size: stem width + four stage widths, stem depth + four stage depths, LiteMLA head dim."""

    series: str  # "b" or "l"
    widths: tuple[int, int, int, int, int]
    depths: tuple[int, int, int, int, int]
    head_dim: int


#: The released sizes (as in the EfficientViT release and TAO's backbone_v2).
EFFICIENTVIT_PRESETS: dict[str, EfficientViTPreset] = {
    "b0": EfficientViTPreset("b", (8, 16, 32, 64, 128), (1, 2, 2, 2, 2), 16),
    "b1": EfficientViTPreset("b", (16, 32, 64, 128, 256), (1, 2, 3, 3, 4), 16),
    "b2": EfficientViTPreset("b", (24, 48, 96, 192, 384), (1, 3, 4, 4, 6), 32),
    "b3": EfficientViTPreset("b", (32, 64, 128, 256, 512), (1, 4, 6, 6, 9), 32),
    "l0": EfficientViTPreset("l", (32, 64, 128, 256, 512), (1, 1, 1, 4, 4), 32),
    "l1": EfficientViTPreset("l", (32, 64, 128, 256, 512), (1, 1, 1, 6, 6), 32),
    "l2": EfficientViTPreset("l", (32, 64, 128, 256, 512), (1, 2, 2, 8, 8), 32),
    "l3": EfficientViTPreset("l", (64, 128, 256, 512, 1024), (1, 2, 2, 8, 8), 32),
}


class EfficientViT(nn.Module):
    """EfficientViT feature extractor.

    forward(x: [B, 3, H, W] normalised) -> {name: [B, C_i, ceil(H / 2^(i+2)), ceil(W / 2^(i+2))]}
    for each name in `out_features` (`res{i+2}` is stage i). Stages after the deepest requested
    map are built (so checkpoints load) but not run. `use_checkpoint` recomputes each stage's
    activations in backward (torch.utils.checkpoint) when gradients are on, outside ONNX export.
    """

    def __init__(
        self,
        *,
        name: str = "l0",
        out_features: Sequence[str] = FEATURE_NAMES,
        use_checkpoint: bool = False,
        pretrain_img_size: int = 384,
    ) -> None:
        super().__init__()
        if name not in EFFICIENTVIT_PRESETS:
            raise ValueError(f"EfficientViT name {name!r} is not one of {sorted(EFFICIENTVIT_PRESETS)}")
        unknown = [f for f in out_features if f not in FEATURE_NAMES]
        if not out_features or unknown:
            raise ValueError(f"out_features {list(out_features)} must be a non-empty subset of {list(FEATURE_NAMES)}")
        preset = EFFICIENTVIT_PRESETS[name]
        self.name = name
        self.series = preset.series
        self.out_features = tuple(f for f in FEATURE_NAMES if f in out_features)
        self.use_checkpoint = use_checkpoint
        # No position embedding: the size the weights were trained at does not shape the network.
        self.pretrain_img_size = pretrain_img_size
        self.num_features = list(preset.widths[1:])
        if preset.series == "b":
            self.input_stem = _b_stem(preset)
            self.stages = nn.ModuleList(_b_stage(preset, i) for i in range(4))
        else:
            self.stages = nn.ModuleList([_l_stem(preset)] + [_l_stage(preset, i) for i in range(4)])

    @property
    def output_channels(self) -> dict[str, int]:
        """Channels of each returned feature map."""
        return {f: self.num_features[FEATURE_NAMES.index(f)] for f in self.out_features}

    @property
    def output_strides(self) -> dict[str, int]:
        """Stride (input pixels per feature pixel) of each returned feature map."""
        return {f: STRIDES[FEATURE_NAMES.index(f)] for f in self.out_features}

    def pyramid_stages(self) -> list[nn.Module]:
        """The four stages producing res2..res5 (the stem excluded)."""
        return list(self.stages) if self.series == "b" else list(self.stages)[1:]

    def stem(self) -> nn.Module:
        return self.input_stem if self.series == "b" else self.stages[0]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.stem()(x)  # [B, C0, H/2, W/2]
        last = max(FEATURE_NAMES.index(f) for f in self.out_features)
        outputs: dict[str, Tensor] = {}
        for i, stage in enumerate(self.pyramid_stages()[:last + 1]):
            if self.use_checkpoint and torch.is_grad_enabled() and not torch.onnx.is_in_onnx_export():
                x = activation_checkpoint.checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
            if FEATURE_NAMES[i] in self.out_features:
                outputs[FEATURE_NAMES[i]] = x
        return outputs


def _b_stem(p: EfficientViTPreset) -> OpSequential:
    width = p.widths[0]
    ops: list[nn.Module] = [ConvLayer(3, width, 3, 2, act="hswish")]
    ops += [ResidualBlock(DSConv(width, width, act="hswish"), shortcut=True) for _ in range(p.depths[0])]
    return OpSequential(ops)


def _b_stage(p: EfficientViTPreset, i: int) -> OpSequential:
    """Stage i (0..3) of the B series; its first block downsamples."""
    in_width, width, depth = p.widths[i], p.widths[i + 1], p.depths[i + 1]
    if i < 2:  # convolutional: `depth` MBConvs, the first strided without shortcut
        return OpSequential([
            ResidualBlock(MBConv(in_width if j == 0 else width, width, 2 if j == 0 else 1, expand_ratio=4,
                                 act="hswish"), shortcut=j > 0)
            for j in range(depth)
        ])
    ops: list[nn.Module] = [
        ResidualBlock(MBConv(in_width, width, 2, expand_ratio=4, act="hswish", fewer_norm=True), shortcut=False)
    ]
    ops += [EfficientViTBlock(width, head_dim=p.head_dim, expand_ratio=4, act="hswish") for _ in range(depth)]
    return OpSequential(ops)


def _l_stem(p: EfficientViTPreset) -> OpSequential:
    width = p.widths[0]
    ops: list[nn.Module] = [ConvLayer(3, width, 3, 2, act="gelu")]
    ops += [ResidualBlock(ResBlock(width, width, act="gelu"), shortcut=True) for _ in range(p.depths[0])]
    return OpSequential(ops)


def _l_stage(p: EfficientViTPreset, i: int) -> OpSequential:
    """Stage i (0..3) of the L series: a downsampling block, then `depth` blocks."""
    in_width, width, depth = p.widths[i], p.widths[i + 1], p.depths[i + 1]
    if i < 2:  # FusedMBConv: 16x on the strided block, 4x after
        return OpSequential(
            [ResidualBlock(FusedMBConv(in_width, width, 2, expand_ratio=16, act="gelu"), shortcut=False)]
            + [ResidualBlock(FusedMBConv(width, width, expand_ratio=4, act="gelu"), shortcut=True) for _ in range(depth)]
        )
    if i == 2:  # MBConv without the first two norms
        return OpSequential(
            [ResidualBlock(MBConv(in_width, width, 2, expand_ratio=16, act="gelu", fewer_norm=True), shortcut=False)]
            + [ResidualBlock(MBConv(width, width, expand_ratio=4, act="gelu", fewer_norm=True), shortcut=True)
               for _ in range(depth)]
        )
    return OpSequential(
        [ResidualBlock(MBConv(in_width, width, 2, expand_ratio=24, act="gelu", fewer_norm=True), shortcut=False)]
        + [EfficientViTBlock(width, head_dim=p.head_dim, expand_ratio=6, act="gelu") for _ in range(depth)]
    )
