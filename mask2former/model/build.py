"""Composition root: the only place that reads the experiment config to build model pieces.

`model_constructor_args(cfg)` resolves every constructor argument (Swin preset applied, derived
shapes filled in) into one JSON-serialisable dict, which is logged per trial; `build_model`,
`build_criterion` and `build_postprocessor` construct from that dict alone, so what is logged is
exactly what is built. Spec values that cannot build a model raise `SpecError` naming the key.

Backbones (`model.backbone.type`): `swin` or `efficientvit` (`model.backbone.efficientvit.name`
b0-b3/l0-l3, see `backbone/efficientvit.py`). EfficientViT returns the maps named in
`efficientvit.out_features` plus `res{i+2}` for each stage index i in `efficientvit.out_indices`:
TAO's own EfficientViT wrapper ignores out_indices and always feeds res2..res5, and its defaults
(out_indices [1, 2, 3], out_features res2..res5) give exactly those four here too, while an
out_indices beyond out_features still adds its map. `pretrain_img_size` is validated and logged;
EfficientViT has no position embedding, so it changes nothing that is built.

Swin presets (`model.backbone.swin.type`): tiny/small/base/large supply `embed_dim`, `depths` and
`num_heads` of the released model of that size, for each of those three fields the spec leaves
at the TAO default (the tiny values 96, [2, 2, 6, 2], [3, 6, 12, 24]); a field set to anything
else wins. (A spec cannot be told apart from one that wrote the default explicitly, so
`type: base` with an explicit `embed_dim: 96` yields 128.)
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import torch

from mask2former.config import BackboneConfig, ExperimentConfig, MaskFormerConfig, ModelConfig, SemSegHeadConfig
from mask2former.model.backbone.efficientvit import EFFICIENTVIT_PRESETS, STRIDES, EfficientViT
from mask2former.model.backbone.efficientvit_checkpoint import load_efficientvit_checkpoint
from mask2former.model.backbone.swin import FEATURE_NAMES, SWIN_PRESETS, SwinTransformer
from mask2former.model.backbone.swin_checkpoint import load_swin_checkpoint
from mask2former.model.criterion import SetCriterion
from mask2former.model.layers import GN_NUM_GROUPS, NORM_CHOICES
from mask2former.model.mask2former import Mask2FormerModel
from mask2former.model.matcher import HungarianMatcher
from mask2former.model.pixel_decoder.deformable_decoder import FeatureShape, MSDeformAttnPixelDecoder
from mask2former.model.postprocessing import MODES, Postprocessor
from mask2former.model.transformer_decoder.mask2former_decoder import MultiScaleMaskedTransformerDecoder
from skillkit.errors import SpecError

_TAO_DEFAULT_PRESET = "tiny"


def model_constructor_args(cfg: ExperimentConfig) -> dict[str, Any]:
    """Every resolved constructor argument of the model, criterion and post-processor (JSON-safe)."""
    model = cfg.model
    backbone = _backbone_args(model.backbone)
    pixel_decoder = _pixel_decoder_args(
        model.sem_seg_head, _backbone_output_shapes(backbone), backbone_key=backbone["type"]
    )
    predictor = _predictor_args(model.sem_seg_head, model.mask_former, pixel_decoder)
    matcher, criterion = _loss_args(model.mask_former, model.sem_seg_head.num_classes)
    return {
        "backbone": backbone,
        "pixel_decoder": pixel_decoder,
        "predictor": predictor,
        "model": {
            "pixel_mean": _pixel_stats(cfg.dataset.pixel_mean, "dataset.pixel_mean", positive=False),
            "pixel_std": _pixel_stats(cfg.dataset.pixel_std, "dataset.pixel_std", positive=True),
            "deep_supervision": bool(model.mask_former.deep_supervision),
        },
        "matcher": matcher,
        "criterion": criterion,
        "postprocessor": _postprocessor_args(model),
    }


def build_model(cfg: ExperimentConfig, *, load_pretrained: bool = True) -> Mask2FormerModel:
    """Build the network; load `model.backbone.pretrained_weights` unless `load_pretrained` is False
    (e.g. when a full checkpoint is loaded next)."""
    args = model_constructor_args(cfg)
    backbone = build_backbone(args["backbone"], load_pretrained=load_pretrained)
    decoder_args = dict(args["pixel_decoder"])
    decoder_args["input_shape"] = {k: FeatureShape(*v) for k, v in decoder_args["input_shape"].items()}
    return Mask2FormerModel(
        backbone=backbone,
        pixel_decoder=MSDeformAttnPixelDecoder(**decoder_args),
        predictor=MultiScaleMaskedTransformerDecoder(**args["predictor"]),
        **args["model"],
    )


def build_backbone(args: dict[str, Any], *, load_pretrained: bool = True) -> SwinTransformer | EfficientViT:
    """The backbone from the resolved `model_constructor_args(cfg)["backbone"]`, with its release weights."""
    weights = args["pretrained_weights"] if load_pretrained else ""
    if args["type"] == "efficientvit":
        efficientvit = EfficientViT(**args["efficientvit"])
        if weights:
            load_efficientvit_checkpoint(efficientvit, weights)
        return efficientvit
    swin = SwinTransformer(**args["swin"])
    if weights:
        load_swin_checkpoint(swin, weights)
    return swin


def _backbone_output_shapes(backbone: dict[str, Any]) -> dict[str, list[int]]:
    """{feature name: [channels, stride]} of what the resolved backbone returns."""
    if backbone["type"] == "efficientvit":
        widths = EFFICIENTVIT_PRESETS[backbone["efficientvit"]["name"]].widths[1:]
        return {f: [widths[FEATURE_NAMES.index(f)], STRIDES[FEATURE_NAMES.index(f)]]
                for f in backbone["efficientvit"]["out_features"]}
    swin = backbone["swin"]
    return {
        f"res{i + 2}": [swin["embed_dim"] * 2**i, swin["patch_size"] * 2**i]
        for i in swin["out_indices"] if f"res{i + 2}" in swin["out_features"]
    }


def build_criterion(cfg: ExperimentConfig, *, generator: torch.Generator | None = None) -> SetCriterion:
    """The loss; `generator` (optional) makes the point sampling reproducible."""
    args = model_constructor_args(cfg)
    matcher = HungarianMatcher(**args["matcher"], generator=generator)
    return SetCriterion(matcher=matcher, **args["criterion"], generator=generator)


def build_postprocessor(cfg: ExperimentConfig, *, thing_ids: Collection[int] = ()) -> Postprocessor:
    """Inference post-processing for `model.mode`; `thing_ids` are train ids of thing classes."""
    return Postprocessor(**model_constructor_args(cfg)["postprocessor"], thing_ids=thing_ids)


# --------------------------------------------------------------------------------------------
# Per-section resolution and validation.


def _backbone_args(backbone: BackboneConfig) -> dict[str, Any]:
    if backbone.type == "efficientvit":
        return _efficientvit_args(backbone)
    if backbone.type != "swin":
        raise SpecError(f"model.backbone.type: {backbone.type!r} is not a backbone; allowed: 'swin', 'efficientvit'.")
    swin = backbone.swin
    if swin.type not in SWIN_PRESETS:
        raise SpecError(f"model.backbone.swin.type: {swin.type!r} is not a Swin size; allowed: {sorted(SWIN_PRESETS)}.")
    preset, default = SWIN_PRESETS[swin.type], SWIN_PRESETS[_TAO_DEFAULT_PRESET]
    embed_dim = preset.embed_dim if swin.embed_dim == default.embed_dim else int(swin.embed_dim)
    depths = list(preset.depths) if list(swin.depths) == list(default.depths) else [int(d) for d in swin.depths]
    num_heads = list(preset.num_heads) if list(swin.num_heads) == list(default.num_heads) else [int(h) for h in swin.num_heads]
    key = "model.backbone.swin"
    if len(depths) != 4 or len(num_heads) != 4 or min(depths) < 1 or min(num_heads) < 1:
        raise SpecError(f"{key}.depths {depths} / {key}.num_heads {num_heads}: need 4 positive values each (one per stage).")
    for i, heads in enumerate(num_heads):
        if (embed_dim * 2**i) % heads:
            raise SpecError(
                f"{key}.num_heads[{i}] = {heads} does not divide stage {i}'s width {embed_dim * 2**i} "
                f"({key}.embed_dim {embed_dim} * 2**{i}); choose heads that divide it."
            )
    _require(embed_dim >= 1, f"{key}.embed_dim", embed_dim, ">= 1")
    _require(swin.patch_size >= 1, f"{key}.patch_size", swin.patch_size, ">= 1")
    _require(swin.window_size >= 1, f"{key}.window_size", swin.window_size, ">= 1")
    _require(swin.mlp_ratio > 0, f"{key}.mlp_ratio", swin.mlp_ratio, "> 0")
    _require(swin.pretrain_img_size >= swin.patch_size, f"{key}.pretrain_img_size", swin.pretrain_img_size,
             f">= patch_size ({swin.patch_size})")
    qk_scale = swin.qk_scale
    _require(qk_scale is None or qk_scale > 0, f"{key}.qk_scale", qk_scale, "> 0 or empty")
    for name in ("drop_rate", "attn_drop_rate", "drop_path_rate"):
        value = getattr(swin, name)
        _require(0 <= value < 1, f"{key}.{name}", value, "in [0, 1)")
    out_indices = [int(i) for i in swin.out_indices]
    if not out_indices or len(set(out_indices)) != len(out_indices) or any(not 0 <= i < 4 for i in out_indices):
        raise SpecError(f"{key}.out_indices {out_indices}: need distinct stage indices in 0..3.")
    produced = [f"res{i + 2}" for i in sorted(out_indices)]
    out_features = list(swin.out_features)
    bad = [f for f in out_features if f not in produced]
    if not out_features or bad:
        raise SpecError(
            f"{key}.out_features {out_features}: each name must be one of the stages in out_indices {out_indices}, "
            f"i.e. {produced} (res{{i+2}} is stage i)."
        )
    return {
        "type": "swin",
        "preset": swin.type,
        "pretrained_weights": str(backbone.pretrained_weights or ""),
        "swin": {
            "pretrain_img_size": int(swin.pretrain_img_size),
            "patch_size": int(swin.patch_size),
            "embed_dim": embed_dim,
            "depths": depths,
            "num_heads": num_heads,
            "window_size": int(swin.window_size),
            "mlp_ratio": float(swin.mlp_ratio),
            "qkv_bias": bool(swin.qkv_bias),
            "qk_scale": None if qk_scale is None else float(qk_scale),
            "drop_rate": float(swin.drop_rate),
            "attn_drop_rate": float(swin.attn_drop_rate),
            "drop_path_rate": float(swin.drop_path_rate),
            "ape": bool(swin.ape),
            "patch_norm": bool(swin.patch_norm),
            "out_indices": out_indices,
            "out_features": [f for f in FEATURE_NAMES if f in out_features],
            "use_checkpoint": bool(swin.use_checkpoint),
        },
    }


def _efficientvit_args(backbone: BackboneConfig) -> dict[str, Any]:
    key = "model.backbone.efficientvit"
    evit = backbone.efficientvit
    if evit.name not in EFFICIENTVIT_PRESETS:
        raise SpecError(f"{key}.name: {evit.name!r} is not an EfficientViT model; allowed: {sorted(EFFICIENTVIT_PRESETS)}.")
    out_indices = [int(i) for i in evit.out_indices]
    if len(set(out_indices)) != len(out_indices) or any(not 0 <= i < 4 for i in out_indices):
        raise SpecError(
            f"{key}.out_indices {out_indices}: need distinct stage indices in 0..3 (stage i returns res{{i+2}}, "
            "stride 4 * 2**i)."
        )
    out_features = list(evit.out_features)
    bad = [f for f in out_features if f not in FEATURE_NAMES]
    if bad:
        raise SpecError(f"{key}.out_features {out_features}: {bad} are not feature names; allowed: {list(FEATURE_NAMES)}.")
    returned = set(out_features) | {f"res{i + 2}" for i in out_indices}
    if not returned:
        raise SpecError(f"{key}.out_features and {key}.out_indices are both empty; the backbone would return nothing.")
    _require(evit.pretrain_img_size >= 1, f"{key}.pretrain_img_size", evit.pretrain_img_size, ">= 1")
    return {
        "type": "efficientvit",
        "preset": evit.name,
        "pretrained_weights": str(backbone.pretrained_weights or ""),
        "efficientvit": {
            "name": evit.name,
            "out_features": [f for f in FEATURE_NAMES if f in returned],
            "use_checkpoint": bool(evit.use_checkpoint),
            "pretrain_img_size": int(evit.pretrain_img_size),
        },
    }


def _pixel_decoder_args(
    head: SemSegHeadConfig, input_shape: dict[str, list[int]], *, backbone_key: str = "swin"
) -> dict[str, Any]:
    key = "model.sem_seg_head"
    in_features = list(head.deformable_transformer_encoder_in_features)
    missing = [f for f in in_features if f not in input_shape]
    if not in_features or missing or len(set(in_features)) != len(in_features):
        raise SpecError(
            f"{key}.deformable_transformer_encoder_in_features {in_features}: need distinct names among the backbone "
            f"outputs {sorted(input_shape)} (model.backbone.{backbone_key}.out_features / out_indices)."
        )
    norm = head.norm if head.norm is not None else ""
    if norm not in NORM_CHOICES:
        raise SpecError(f"{key}.norm: {norm!r} is not a norm; allowed: {list(NORM_CHOICES)}.")
    conv_dim = int(head.convs_dim)
    if norm == "GN" and conv_dim % GN_NUM_GROUPS:
        raise SpecError(f"{key}.convs_dim {conv_dim} must be a multiple of {GN_NUM_GROUPS} with norm GN (32 groups).")
    _require(conv_dim % 4 == 0, f"{key}.convs_dim", conv_dim, "a multiple of 4 (sine position encoding)")
    nheads = int(head.transformer_nheads)
    _require(nheads >= 1 and conv_dim % nheads == 0, f"{key}.transformer_nheads", nheads,
             f"a divisor of convs_dim ({conv_dim})")
    _require(head.mask_dim >= 1, f"{key}.mask_dim", head.mask_dim, ">= 1")
    _require(head.transformer_enc_layers >= 1, f"{key}.transformer_enc_layers", head.transformer_enc_layers, ">= 1")
    ffn = int(head.transformer_dim_feedforward)
    _require(ffn >= 1, f"{key}.transformer_dim_feedforward", ffn, ">= 1")
    dropout = float(head.transformer_dropout)
    _require(0 <= dropout < 1, f"{key}.transformer_dropout", dropout, "in [0, 1)")
    n_points = int(head.transformer_n_points)
    _require(n_points >= 1, f"{key}.transformer_n_points", n_points, ">= 1")
    shapes = {name: FeatureShape(*shape) for name, shape in input_shape.items()}
    finest = min(shapes[f].stride for f in in_features)
    strides = sorted(shape.stride for shape in shapes.values() if shape.stride <= finest)
    stride = int(head.common_stride)
    if stride not in strides:
        raise SpecError(
            f"{key}.common_stride {stride}: the mask features must come from a backbone output at or below the "
            f"finest encoder level (stride {finest}); allowed: {strides}."
        )
    return {
        "input_shape": input_shape,
        "transformer_in_features": [f for f in FEATURE_NAMES if f in in_features],
        "conv_dim": conv_dim,
        "mask_dim": int(head.mask_dim),
        "norm": "" if norm == "none" else norm,
        "common_stride": stride,
        "transformer_enc_layers": int(head.transformer_enc_layers),
        "transformer_dim_feedforward": ffn,
        "transformer_nheads": nheads,
        "transformer_dropout": dropout,
        "transformer_n_points": n_points,
    }


def _predictor_args(head: SemSegHeadConfig, mf: MaskFormerConfig, pixel_decoder: dict[str, Any]) -> dict[str, Any]:
    key = "model.mask_former"
    hidden, nheads = int(mf.hidden_dim), int(mf.nheads)
    _require(nheads >= 1, f"{key}.nheads", nheads, ">= 1")
    if hidden % nheads or hidden % 4:
        raise SpecError(
            f"{key}.hidden_dim {hidden} must be divisible by {key}.nheads ({nheads}) and by 4 (sine position encoding)."
        )
    _require(mf.dec_layers >= 1, f"{key}.dec_layers", mf.dec_layers, ">= 1")
    _require(mf.num_object_queries >= 1, f"{key}.num_object_queries", mf.num_object_queries, ">= 1")
    _require(mf.dim_feedforward >= 1, f"{key}.dim_feedforward", mf.dim_feedforward, ">= 1")
    _require(0 <= mf.dropout < 1, f"{key}.dropout", mf.dropout, "in [0, 1)")
    _require(head.num_classes >= 1, "model.sem_seg_head.num_classes", head.num_classes, ">= 1")
    return {
        "in_channels": pixel_decoder["conv_dim"],
        "num_classes": int(head.num_classes),
        "hidden_dim": hidden,
        "num_queries": int(mf.num_object_queries),
        "nheads": nheads,
        "dim_feedforward": int(mf.dim_feedforward),
        "dec_layers": int(mf.dec_layers),
        "pre_norm": bool(mf.pre_norm),
        "dropout": float(mf.dropout),
        "mask_dim": pixel_decoder["mask_dim"],
        "num_feature_levels": len(pixel_decoder["transformer_in_features"]),
    }


def _loss_args(mf: MaskFormerConfig, num_classes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    key = "model.mask_former"
    weights = {name: float(getattr(mf, name)) for name in ("class_weight", "mask_weight", "dice_weight")}
    for name, value in weights.items():
        _require(value >= 0 and math.isfinite(value), f"{key}.{name}", value, ">= 0 and finite")
    if not any(weights.values()):
        raise SpecError(f"{key}.class_weight, mask_weight and dice_weight are all 0; at least one must be > 0.")
    _require(0 < mf.no_object_weight <= 1, f"{key}.no_object_weight", mf.no_object_weight, "in (0, 1]")
    _require(mf.train_num_points >= 1, f"{key}.train_num_points", mf.train_num_points, ">= 1")
    _require(mf.oversample_ratio >= 1, f"{key}.oversample_ratio", mf.oversample_ratio, ">= 1")
    _require(0 <= mf.importance_sample_ratio <= 1, f"{key}.importance_sample_ratio", mf.importance_sample_ratio,
             "in [0, 1]")
    matcher = {
        "cost_class": weights["class_weight"],
        "cost_mask": weights["mask_weight"],
        "cost_dice": weights["dice_weight"],
        "num_points": int(mf.train_num_points),
    }
    criterion = {
        "num_classes": int(num_classes),
        **weights,
        "no_object_weight": float(mf.no_object_weight),
        "num_points": int(mf.train_num_points),
        "oversample_ratio": float(mf.oversample_ratio),
        "importance_sample_ratio": float(mf.importance_sample_ratio),
        "deep_supervision": bool(mf.deep_supervision),
    }
    return matcher, criterion


def _postprocessor_args(model: ModelConfig) -> dict[str, Any]:
    if model.mode not in MODES:
        raise SpecError(f"model.mode: {model.mode!r} is not a mode; allowed: {list(MODES)}.")
    _require(0 <= model.object_mask_threshold <= 1, "model.object_mask_threshold", model.object_mask_threshold, "in [0, 1]")
    _require(0 <= model.overlap_threshold <= 1, "model.overlap_threshold", model.overlap_threshold, "in [0, 1]")
    _require(model.test_topk_per_image >= 1, "model.test_topk_per_image", model.test_topk_per_image, ">= 1")
    return {
        "mode": model.mode,
        "object_mask_threshold": float(model.object_mask_threshold),
        "overlap_threshold": float(model.overlap_threshold),
        "test_topk_per_image": int(model.test_topk_per_image),
    }


def _pixel_stats(values: Any, key: str, *, positive: bool) -> list[float]:
    stats = [float(v) for v in values]
    if len(stats) != 3 or (positive and min(stats) <= 0):
        rule = "3 values (R, G, B), each > 0" if positive else "3 values (R, G, B)"
        raise SpecError(f"{key}: {stats} is not valid; need {rule}, for images scaled to [0, 1].")
    return stats


def _require(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise SpecError(f"{key}: {value!r} is not allowed; it must be {rule}.")
