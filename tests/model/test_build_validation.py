"""Spec values that cannot build a model raise SpecError naming the key, the value and the rule."""

from __future__ import annotations

import pytest

from mask2former.model.build import build_model, model_constructor_args
from mask2former.model.tiny import tiny_config
from skillkit.errors import SpecError

S, H, M = "model.backbone.swin.", "model.sem_seg_head.", "model.mask_former."
E = "model.backbone.efficientvit."
EVIT = {"model.backbone.type": "efficientvit"}

BAD = [
    ({"model.backbone.type": "resnet"}, r"model\.backbone\.type: 'resnet'.*allowed: 'swin', 'efficientvit'"),
    ({**EVIT, E + "name": "m5"}, r"model\.backbone\.efficientvit\.name: 'm5' .*allowed: \['b0'.*'l3'\]"),
    ({**EVIT, E + "out_indices": [1, 1]}, r"efficientvit\.out_indices \[1, 1\]: need distinct stage indices in 0\.\.3"),
    ({**EVIT, E + "out_indices": [4]}, r"efficientvit\.out_indices \[4\]"),
    ({**EVIT, E + "out_features": ["res1"]}, r"efficientvit\.out_features \['res1'\]: \['res1'\] are not feature names"),
    ({**EVIT, E + "out_features": [], E + "out_indices": []}, r"out_features and .*out_indices are both empty"),
    ({**EVIT, E + "pretrain_img_size": 0}, r"efficientvit\.pretrain_img_size: 0 is not allowed"),
    ({**EVIT, E + "out_features": ["res4", "res5"], E + "out_indices": []},
     r"encoder_in_features \['res3', 'res4', 'res5'\].*\(model\.backbone\.efficientvit\.out_features"),
    ({S + "type": "huge"}, r"model\.backbone\.swin\.type: 'huge'.*allowed"),
    ({S + "depths": [2, 2, 2]}, r"depths \[2, 2, 2\].*4 positive values"),
    ({S + "num_heads": [1, 2, 4, 0]}, r"num_heads.*4 positive values"),
    ({S + "num_heads": [3, 2, 4, 8]}, r"num_heads\[0\] = 3 does not divide stage 0's width 32"),
    ({S + "window_size": 0}, r"window_size: 0 is not allowed; it must be >= 1"),
    ({S + "patch_size": 0}, r"patch_size: 0"),
    ({S + "mlp_ratio": 0.0}, r"mlp_ratio: 0\.0 .* > 0"),
    ({S + "qk_scale": -1.0}, r"qk_scale: -1\.0"),
    ({S + "drop_path_rate": 1.0}, r"drop_path_rate: 1\.0 .* in \[0, 1\)"),
    ({S + "pretrain_img_size": 2}, r"pretrain_img_size: 2"),
    ({S + "out_indices": [0, 0, 1]}, r"out_indices \[0, 0, 1\]: need distinct"),
    ({S + "out_indices": [0, 1, 2, 4]}, r"out_indices"),
    ({S + "out_features": ["res2", "res6"]}, r"out_features \['res2', 'res6'\]"),
    ({H + "deformable_transformer_encoder_in_features": ["res3", "res9"]}, r"deformable_transformer_encoder_in_features"),
    ({H + "deformable_transformer_encoder_in_features": []}, r"deformable_transformer_encoder_in_features \[\]"),
    ({H + "norm": "LN"}, r"model\.sem_seg_head\.norm: 'LN'.*allowed"),
    ({H + "convs_dim": 48}, r"convs_dim 48 must be a multiple of 32 with norm GN"),
    ({H + "convs_dim": 30, H + "norm": ""}, r"convs_dim: 30 .* multiple of 4"),
    ({H + "transformer_nheads": 5}, r"transformer_nheads: 5 .* divisor of convs_dim \(32\)"),
    ({H + "transformer_dim_feedforward": 0}, r"transformer_dim_feedforward: 0"),
    ({H + "transformer_dropout": 1.5}, r"transformer_dropout: 1\.5"),
    ({H + "transformer_n_points": 0}, r"transformer_n_points: 0"),
    ({H + "mask_dim": 0}, r"mask_dim: 0"),
    ({H + "transformer_enc_layers": 0}, r"transformer_enc_layers: 0"),
    ({H + "common_stride": 16}, r"common_stride 16: .*allowed: \[4, 8\]"),
    ({H + "num_classes": 0}, r"num_classes: 0"),
    ({M + "hidden_dim": 34}, r"hidden_dim 34 must be divisible by model\.mask_former\.nheads \(4\) and by 4"),
    ({M + "nheads": 0}, r"nheads: 0"),
    ({M + "dec_layers": 0}, r"dec_layers: 0"),
    ({M + "num_object_queries": 0}, r"num_object_queries: 0"),
    ({M + "dim_feedforward": 0}, r"dim_feedforward: 0"),
    ({M + "dropout": 1.0}, r"model\.mask_former\.dropout: 1\.0"),
    ({M + "class_weight": -1.0}, r"class_weight: -1\.0"),
    ({M + "class_weight": 0.0, M + "mask_weight": 0.0, M + "dice_weight": 0.0}, r"all 0"),
    ({M + "no_object_weight": 0.0}, r"no_object_weight: 0\.0 .* in \(0, 1\]"),
    ({M + "train_num_points": 0}, r"train_num_points: 0"),
    ({M + "oversample_ratio": 0.5}, r"oversample_ratio: 0\.5"),
    ({M + "importance_sample_ratio": 1.5}, r"importance_sample_ratio: 1\.5"),
    ({"model.mode": "depth"}, r"model\.mode: 'depth'"),
    ({"model.object_mask_threshold": 2.0}, r"object_mask_threshold: 2\.0"),
    ({"model.overlap_threshold": -0.1}, r"overlap_threshold: -0\.1"),
    ({"model.test_topk_per_image": 0}, r"test_topk_per_image: 0"),
    ({"dataset.pixel_mean": [0.5, 0.5]}, r"dataset\.pixel_mean: \[0\.5, 0\.5\]"),
    ({"dataset.pixel_std": [0.5, 0.0, 0.5]}, r"dataset\.pixel_std: .* each > 0"),
]


@pytest.mark.parametrize("overrides,pattern", BAD, ids=[next(iter(o)) + "=" + repr(next(iter(o.values()))) for o, _ in BAD])
def test_invalid_spec_values_raise_spec_error(overrides: dict, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        model_constructor_args(tiny_config(overrides=overrides))


def test_efficientvit_tao_defaults_feed_all_four_maps() -> None:
    """TAO's defaults (out_indices [1, 2, 3], out_features res2..res5) build; out_indices adds maps."""
    args = model_constructor_args(tiny_config(overrides=EVIT))["backbone"]
    assert args["efficientvit"]["out_features"] == ["res2", "res3", "res4", "res5"] and args["preset"] == "l0"
    args = model_constructor_args(tiny_config(overrides={**EVIT, E + "out_features": ["res2"]}))["backbone"]
    assert args["efficientvit"]["out_features"] == ["res2", "res3", "res4", "res5"]
    model = build_model(tiny_config(overrides={**EVIT, E + "name": "b0"}))
    assert model.backbone.output_channels == {"res2": 16, "res3": 32, "res4": 64, "res5": 128}


def test_presets_fill_only_fields_left_at_tao_defaults() -> None:
    tao = {S + "embed_dim": 96, S + "depths": [2, 2, 6, 2], S + "num_heads": [3, 6, 12, 24]}
    for preset, (dim, depths, heads) in {
        "tiny": (96, [2, 2, 6, 2], [3, 6, 12, 24]),
        "small": (96, [2, 2, 18, 2], [3, 6, 12, 24]),
        "base": (128, [2, 2, 18, 2], [4, 8, 16, 32]),
        "large": (192, [2, 2, 18, 2], [6, 12, 24, 48]),
    }.items():
        swin = model_constructor_args(tiny_config(overrides={**tao, S + "type": preset}))["backbone"]["swin"]
        assert (swin["embed_dim"], swin["depths"], swin["num_heads"]) == (dim, depths, heads)
    # An explicit (non-default) value wins over the preset; the untouched ones come from it.
    swin = model_constructor_args(
        tiny_config(overrides={**tao, S + "type": "base", S + "depths": [2, 2, 4, 2]})
    )["backbone"]["swin"]
    assert (swin["embed_dim"], swin["depths"], swin["num_heads"]) == (128, [2, 2, 4, 2], [4, 8, 16, 32])
