"""Every model-affecting config field changes what is built or computed (no silently ignored settings).

For each field, a base config and a variant differing in that field (plus whatever the field
needs to be valid) are built, and the named aspect of the result must differ:
params (state-dict names/shapes), eval/train outputs on a fixed input (fixed seeds), losses on
fixed predictions, post-processing on fixed predictions, or recomputation under checkpointing.
A coverage test makes sure every field of the config sections has a row here.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mask2former.config import EfficientViTConfig, MaskFormerConfig, SemSegHeadConfig, SwinConfig
from mask2former.model.backbone.efficientvit_layers import EfficientViTBlock
from mask2former.model.backbone.swin import SwinTransformer
from mask2former.model.backbone.swin_layers import SwinBlock
from mask2former.model.build import build_criterion, build_model, build_postprocessor, model_constructor_args
from mask2former.model.tiny import tiny_config

S, H, M = "model.backbone.swin.", "model.sem_seg_head.", "model.mask_former."
E = "model.backbone.efficientvit."
EVIT = {"model.backbone.type": "efficientvit", E + "name": "b0"}
EVIT_C4 = {**EVIT, E + "out_indices": [1, 2, 3], E + "out_features": ["res3", "res4", "res5"], H + "common_stride": 8}
INSTANCE = {"model.mode": "instance"}
# The TAO defaults (= tiny Swin), which the preset named by `type` replaces.
TAO_SWIN = {S + "embed_dim": 96, S + "depths": [2, 2, 6, 2], S + "num_heads": [3, 6, 12, 24]}
C4 = {S + "out_indices": [1, 2, 3], S + "out_features": ["res3", "res4", "res5"], H + "common_stride": 8}

# field -> (variant overrides, aspect that must change, base overrides)
CASES: dict[str, tuple[dict, str, dict]] = {
    S + "type": ({S + "type": "small"}, "swin_params", TAO_SWIN),
    S + "embed_dim": ({S + "embed_dim": 64}, "params", {}),
    S + "depths": ({S + "depths": [2, 2, 4, 2]}, "params", {}),
    S + "num_heads": ({S + "num_heads": [2, 4, 8, 16]}, "params", {}),
    S + "patch_size": ({S + "patch_size": 2}, "params", {}),
    S + "window_size": ({S + "window_size": 2}, "params", {}),
    S + "mlp_ratio": ({S + "mlp_ratio": 2.0}, "params", {}),
    S + "qkv_bias": ({S + "qkv_bias": False}, "params", {}),
    S + "qk_scale": ({S + "qk_scale": 0.05}, "eval_outputs", {}),
    S + "drop_rate": ({S + "drop_rate": 0.3}, "train_outputs", {}),
    S + "attn_drop_rate": ({S + "attn_drop_rate": 0.3}, "train_outputs", {}),
    S + "drop_path_rate": ({S + "drop_path_rate": 0.5}, "train_outputs", {}),
    S + "ape": ({S + "ape": True}, "params", {}),
    S + "patch_norm": ({S + "patch_norm": False}, "params", {}),
    S + "out_indices": ({S + "out_indices": [0, 1, 2, 3]}, "params", C4),
    S + "pretrain_img_size": ({S + "pretrain_img_size": 128}, "params", {S + "ape": True}),
    S + "use_checkpoint": ({S + "use_checkpoint": True}, "recompute", {}),
    S + "out_features": ({S + "out_features": ["res2", "res3", "res4", "res5"]}, "backbone_outputs",
                         {**C4, S + "out_indices": [0, 1, 2, 3]}),
    "model.backbone.type": ({"model.backbone.type": "efficientvit"}, "params", {}),
    E + "name": ({E + "name": "b1"}, "params", EVIT),
    E + "out_indices": ({E + "out_indices": [0, 1, 2, 3]}, "backbone_outputs", EVIT_C4),
    E + "out_features": ({E + "out_features": ["res2", "res3", "res4", "res5"]}, "backbone_outputs", EVIT_C4),
    E + "use_checkpoint": ({E + "use_checkpoint": True}, "recompute", EVIT),
    H + "common_stride": ({H + "common_stride": 8}, "eval_outputs", {}),
    H + "transformer_enc_layers": ({H + "transformer_enc_layers": 2}, "params", {}),
    H + "convs_dim": ({H + "convs_dim": 64}, "params", {}),
    H + "mask_dim": ({H + "mask_dim": 16}, "params", {}),
    H + "deformable_transformer_encoder_in_features": (
        {H + "deformable_transformer_encoder_in_features": ["res4", "res5"]}, "params", {}),
    H + "num_classes": ({H + "num_classes": 9}, "params", {}),
    H + "norm": ({H + "norm": "none"}, "params", {}),
    H + "transformer_dim_feedforward": ({H + "transformer_dim_feedforward": 128}, "params", {}),
    H + "transformer_nheads": ({H + "transformer_nheads": 8}, "params", {}),
    H + "transformer_dropout": ({H + "transformer_dropout": 0.5}, "train_outputs", {}),
    H + "transformer_n_points": ({H + "transformer_n_points": 2}, "params", {}),
    M + "dropout": ({M + "dropout": 0.5}, "train_outputs", {}),
    M + "nheads": ({M + "nheads": 8}, "eval_outputs", {}),
    M + "num_object_queries": ({M + "num_object_queries": 12}, "params", {}),
    M + "hidden_dim": ({M + "hidden_dim": 64}, "params", {}),
    M + "dim_feedforward": ({M + "dim_feedforward": 32}, "params", {}),
    M + "dec_layers": ({M + "dec_layers": 4}, "params", {}),
    M + "pre_norm": ({M + "pre_norm": True}, "eval_outputs", {}),
    M + "class_weight": ({M + "class_weight": 1.0}, "losses", {}),
    M + "dice_weight": ({M + "dice_weight": 1.0}, "losses", {}),
    M + "mask_weight": ({M + "mask_weight": 1.0}, "losses", {}),
    M + "train_num_points": ({M + "train_num_points": 100}, "losses", {}),
    M + "oversample_ratio": ({M + "oversample_ratio": 1.0}, "losses", {}),
    M + "importance_sample_ratio": ({M + "importance_sample_ratio": 0.0}, "losses", {}),
    M + "deep_supervision": ({M + "deep_supervision": False}, "train_outputs", {}),
    M + "no_object_weight": ({M + "no_object_weight": 0.5}, "losses", {}),
    "model.mode": ({"model.mode": "semantic"}, "post", {}),
    "model.object_mask_threshold": ({"model.object_mask_threshold": 0.9}, "post", {"model.overlap_threshold": 0.0}),
    "model.overlap_threshold": ({"model.overlap_threshold": 0.5}, "post", {"model.overlap_threshold": 0.0}),
    "model.test_topk_per_image": ({"model.test_topk_per_image": 3}, "post", INSTANCE),
    "dataset.pixel_mean": ({"dataset.pixel_mean": [0.5, 0.5, 0.5]}, "eval_outputs", {}),
    "dataset.pixel_std": ({"dataset.pixel_std": [0.5, 0.5, 0.5]}, "eval_outputs", {}),
}

# Fields accepted for TAO compatibility that cannot shape the model, each with the reason.
NOT_BUILT = {
    E + "pretrain_img_size": "EfficientViT has no position embedding, so the pretraining size sizes nothing; "
                             "it is validated and logged with the constructor arguments",
}


def _fixed_predictions(num_classes: int, queries: int = 10) -> tuple[dict, list[dict]]:
    g = torch.Generator().manual_seed(7)

    def pred():
        return {"pred_logits": torch.randn(2, queries, num_classes + 1, generator=g) * 3,
                "pred_masks": torch.randn(2, queries, 16, 16, generator=g) * 4}

    outputs = {**pred(), "aux_outputs": [pred(), pred()]}
    targets = [{"labels": torch.tensor([0, 2]), "masks": torch.rand(2, 64, 64, generator=g) > 0.5},
               {"labels": torch.tensor([1]), "masks": torch.rand(1, 64, 64, generator=g) > 0.5}]
    return outputs, targets


def aspect(cfg, name: str):
    """The value of one aspect of what `cfg` builds."""
    if name == "swin_params":
        return sum(p.numel() for p in SwinTransformer(**model_constructor_args(cfg)["backbone"]["swin"]).parameters())
    if name == "losses":
        outputs, targets = _fixed_predictions(cfg.model.sem_seg_head.num_classes)
        torch.manual_seed(3)
        return {k: round(v.item(), 6) for k, v in build_criterion(cfg)(outputs, targets).items()}
    if name == "post":
        outputs, _ = _fixed_predictions(cfg.model.sem_seg_head.num_classes)
        results = build_postprocessor(cfg, thing_ids={0, 1})(
            outputs, input_size=(64, 64), image_sizes=[(60, 52), (64, 64)], output_sizes=[(30, 26), (64, 64)]
        )
        return repr(results)
    torch.manual_seed(0)
    model = build_model(cfg)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    if name == "backbone_outputs":
        return sorted(model.backbone(images))
    if name == "params":
        return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    if name == "recompute":
        calls = []
        for block in model.modules():
            if isinstance(block, (SwinBlock, EfficientViTBlock)):
                block.register_forward_pre_hook(lambda *_: calls.append(1))
        model.train()
        out = model(images)
        out["pred_masks"].sum().backward()
        return len(calls)
    model.train(name == "train_outputs")
    torch.manual_seed(11)
    with torch.no_grad():
        out = model(images)
    return [out["pred_logits"], out["pred_masks"]] + [a["pred_masks"] for a in out.get("aux_outputs", [])]


def _differs(a, b) -> bool:
    if isinstance(a, list) and a and isinstance(a[0], torch.Tensor):
        return len(a) != len(b) or any(x.shape != y.shape or not torch.allclose(x, y) for x, y in zip(a, b))
    return a != b


@pytest.mark.parametrize("field", sorted(CASES))
def test_field_changes_what_is_built(field: str) -> None:
    variant, name, base = CASES[field]
    before = aspect(tiny_config(overrides=base), name)
    after = aspect(tiny_config(overrides={**base, **variant}), name)
    assert _differs(before, after), f"{field} did not change {name}"


def test_every_model_field_is_covered() -> None:
    sections = {S: SwinConfig, E: EfficientViTConfig, H: SemSegHeadConfig, M: MaskFormerConfig}
    fields = {prefix + f.name for prefix, cls in sections.items() for f in dataclasses.fields(cls)}
    assert fields - set(CASES) - set(NOT_BUILT) == set()
    assert not set(CASES) & set(NOT_BUILT)


def test_efficientvit_pretrain_img_size_is_logged_not_built() -> None:
    args = model_constructor_args(tiny_config(overrides={**EVIT, E + "pretrain_img_size": 224}))
    assert args["backbone"]["efficientvit"]["pretrain_img_size"] == 224
    torch.manual_seed(0)
    a = build_model(tiny_config(overrides={**EVIT, E + "pretrain_img_size": 224})).state_dict()
    torch.manual_seed(0)
    b = build_model(tiny_config(overrides=EVIT)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


def test_constructor_args_are_json_and_complete() -> None:
    import json

    args = model_constructor_args(tiny_config())
    assert json.loads(json.dumps(args)) == args
    assert set(args) == {"backbone", "pixel_decoder", "predictor", "model", "matcher", "criterion", "postprocessor"}
    assert args["predictor"]["dec_layers"] == 3 and args["backbone"]["swin"]["depths"] == [2, 2, 2, 2]
