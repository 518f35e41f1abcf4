"""Mask2Former's pixel decoder: a deformable-attention encoder over the coarse levels plus an FPN.

The encoder refines the backbone levels named in `transformer_in_features` (res3-res5 by
default) jointly; an FPN then walks down to `common_stride` with lateral + output convs and a
1x1 conv yields the per-pixel mask features. Module names match the original
(`input_proj`, `transformer.encoder.layers`, `adapter_1`, `layer_1`, `mask_features`).

Differences from the original, all so that every setting is real: the encoder's feed-forward
width, heads, dropout and sampling points are constructor arguments (the original fixes the
width at 1024), and `norm` also applies to the input projections (the original always uses GN
there; identical for the default "GN").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mask2former.model.layers import Conv2dNorm, PositionEmbeddingSine, c2_xavier_fill, make_norm
from mask2former.model.pixel_decoder.deformable_attention import MSDeformAttn


class MSDeformAttnEncoderLayer(nn.Module):
    """Deformable self-attention + FFN, post-norm."""

    def __init__(self, *, d_model: int, d_ffn: int, dropout: float, n_levels: int, n_heads: int, n_points: int) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src: Tensor, pos: Tensor, reference_points: Tensor, spatial_shapes: Sequence[tuple[int, int]]) -> Tensor:
        """src, pos: [B, S, C]; returns [B, S, C]."""
        attn = self.self_attn(src + pos, reference_points, src, spatial_shapes)
        src = self.norm1(src + self.dropout1(attn))
        ffn = self.linear2(self.dropout2(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout3(ffn))


class _EncoderLayers(nn.Module):
    def __init__(self, layers: list[MSDeformAttnEncoderLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)


class MSDeformAttnTransformerEncoderOnly(nn.Module):
    """Stack of deformable encoder layers over flattened multi-level features (+ level embeddings)."""

    def __init__(
        self, *, d_model: int, n_heads: int, num_layers: int, d_ffn: int, dropout: float, n_levels: int, n_points: int
    ) -> None:
        super().__init__()
        self.encoder = _EncoderLayers(
            [
                MSDeformAttnEncoderLayer(
                    d_model=d_model, d_ffn=d_ffn, dropout=dropout, n_levels=n_levels, n_heads=n_heads, n_points=n_points
                )
                for _ in range(num_layers)
            ]
        )
        self.level_embed = nn.Parameter(torch.empty(n_levels, d_model))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m.reset_parameters()
        nn.init.normal_(self.level_embed)

    @staticmethod
    def reference_points(spatial_shapes: Sequence[tuple[int, int]], device: torch.device, dtype: torch.dtype) -> Tensor:
        """Pixel centres of every level, normalised to [0, 1]: [1, S, levels, 2] as (x, y)."""
        refs = []
        for h, w in spatial_shapes:
            ys = torch.linspace(0.5, h - 0.5, h, dtype=dtype, device=device) / h
            xs = torch.linspace(0.5, w - 0.5, w, dtype=dtype, device=device) / w
            ref_y, ref_x = torch.meshgrid(ys, xs, indexing="ij")
            refs.append(torch.stack((ref_x.reshape(-1), ref_y.reshape(-1)), -1))
        ref = torch.cat(refs, 0)  # [S, 2]
        # No padding masks (valid ratio 1), so every level sees the same point: [1, S, levels, 2]
        return ref[None, :, None, :].expand(1, -1, len(spatial_shapes), -1)

    def forward(self, srcs: list[Tensor], pos_embeds: list[Tensor]) -> tuple[Tensor, list[tuple[int, int]]]:
        """srcs, pos_embeds: per level [B, C, H_l, W_l] -> ([B, S, C], [(H_l, W_l), ...])."""
        shapes = [(int(s.shape[2]), int(s.shape[3])) for s in srcs]
        # Flatten levels to tokens: [B, C, H, W] -> [B, H*W, C], then concatenate.
        src = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        pos = torch.cat(
            [p.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1) for lvl, p in enumerate(pos_embeds)], 1
        )
        ref = self.reference_points(shapes, src.device, src.dtype)
        for layer in self.encoder.layers:
            src = layer(src, pos, ref, shapes)
        return src, shapes


class FeatureShape(NamedTuple):
    """One backbone output: its channels and its stride relative to the input image."""

    channels: int
    stride: int


class MSDeformAttnPixelDecoder(nn.Module):
    """Backbone features -> (mask features [B, mask_dim, H/common_stride, W/common_stride],
    multi-scale features: `len(transformer_in_features)` maps [B, conv_dim, h, w], coarsest first).
    """

    def __init__(
        self,
        *,
        input_shape: Mapping[str, tuple[int, int] | FeatureShape],
        transformer_in_features: Sequence[str],
        conv_dim: int,
        mask_dim: int,
        norm: str,
        common_stride: int,
        transformer_enc_layers: int,
        transformer_dim_feedforward: int = 1024,
        transformer_nheads: int = 8,
        transformer_dropout: float = 0.0,
        transformer_n_points: int = 4,
    ) -> None:
        """input_shape: backbone feature name -> (channels, stride), e.g. {"res2": (96, 4), ...}."""
        super().__init__()
        shapes = {name: FeatureShape(*shape) for name, shape in input_shape.items()}
        unknown = [f for f in transformer_in_features if f not in shapes]
        if unknown:
            raise ValueError(f"transformer_in_features {unknown} are not backbone outputs {sorted(shapes)}")
        by_stride = sorted(shapes.items(), key=lambda kv: kv[1].stride)
        self.in_features = [name for name, _ in by_stride]  # fine -> coarse
        self.transformer_in_features = [n for n in self.in_features if n in set(transformer_in_features)]
        self.num_levels = len(self.transformer_in_features)
        self.common_stride = common_stride

        # Input projections, coarsest level first (the order the encoder and decoder use).
        self.input_proj = nn.ModuleList()
        for name in reversed(self.transformer_in_features):
            conv = nn.Conv2d(shapes[name].channels, conv_dim, kernel_size=1)
            nn.init.xavier_uniform_(conv.weight, gain=1)
            nn.init.zeros_(conv.bias)
            layers: list[nn.Module] = [conv]
            proj_norm = make_norm(norm, conv_dim)
            if proj_norm is not None:
                layers.append(proj_norm)
            self.input_proj.append(nn.Sequential(*layers))

        self.transformer = MSDeformAttnTransformerEncoderOnly(
            d_model=conv_dim, n_heads=transformer_nheads, num_layers=transformer_enc_layers,
            d_ffn=transformer_dim_feedforward, dropout=transformer_dropout, n_levels=self.num_levels,
            n_points=transformer_n_points,
        )
        self.pe_layer = PositionEmbeddingSine(conv_dim // 2)

        self.mask_dim = mask_dim
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, kernel_size=1)
        c2_xavier_fill(self.mask_features)

        # FPN levels: the backbone outputs from common_stride up to (not including) the finest
        # encoder level, fine -> coarse (res2 for the defaults). The original takes the first
        # log2(finest / common_stride) outputs, which is the same set whenever those are contiguous.
        finest_stride = min(shapes[n].stride for n in self.transformer_in_features)
        self.fpn_features = [n for n in self.in_features if common_stride <= shapes[n].stride < finest_stride]
        self.num_fpn_levels = len(self.fpn_features)
        use_bias = norm in ("", "none")
        # Registered as adapter_{k} / layer_{k} (k = 1 is the finest level) and looked up by name
        # in forward, so wrappers that replace submodules (FSDP, SyncBN conversion) are honoured.
        for idx, name in enumerate(self.fpn_features):
            lateral = Conv2dNorm(shapes[name].channels, conv_dim, 1, bias=use_bias, norm=make_norm(norm, conv_dim))
            output = Conv2dNorm(
                conv_dim, conv_dim, 3, padding=1, bias=use_bias, norm=make_norm(norm, conv_dim), activation=F.relu
            )
            c2_xavier_fill(lateral)
            c2_xavier_fill(output)
            self.add_module(f"adapter_{idx + 1}", lateral)
            self.add_module(f"layer_{idx + 1}", output)

    def forward(self, features: Mapping[str, Tensor]) -> tuple[Tensor, list[Tensor]]:
        srcs, pos = [], []
        for idx, name in enumerate(reversed(self.transformer_in_features)):
            x = features[name]
            srcs.append(self.input_proj[idx](x))
            pos.append(self.pe_layer(x))
        memory, shapes = self.transformer(srcs, pos)
        b = memory.shape[0]
        # Split tokens back per level: [B, S, C] -> [B, C, H_l, W_l]
        outs = [
            chunk.transpose(1, 2).reshape(b, -1, h, w)
            for chunk, (h, w) in zip(memory.split([h * w for h, w in shapes], dim=1), shapes)
        ]
        for k in range(self.num_fpn_levels, 0, -1):  # coarse -> fine
            lateral = getattr(self, f"adapter_{k}")(features[self.fpn_features[k - 1]])
            y = lateral + F.interpolate(outs[-1], size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            outs.append(getattr(self, f"layer_{k}")(y))
        return self.mask_features(outs[-1]), outs[: self.num_levels]
