"""Our Mask2Former against `transformers`' (test-only oracle): same weights -> same outputs and losses.

See `hf_mask2former_oracle.py` for the settings under which the two compute the same function.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from transformers.models.mask2former.modeling_mask2former import (  # noqa: E402
    Mask2FormerHungarianMatcher,
    Mask2FormerLoss,
)

from mask2former.model.build import build_criterion, build_model, model_constructor_args  # noqa: E402
from mask2former.model.matcher import HungarianMatcher  # noqa: E402
from mask2former.model.tiny import tiny_config  # noqa: E402
from tests.model.hf_mask2former_oracle import build_hf_twin, hf_config

# Settings HF can express (see the oracle's docstring); drop_path/dropout 0 so train mode is deterministic.
_HF_COMPATIBLE = {
    "model.backbone.swin.drop_path_rate": 0.0,
    "model.sem_seg_head.transformer_nheads": 4,
}

CASES = {
    # 128 px: every Swin stage (32, 16, 8, 4 tokens) holds whole windows of 4.
    "post_norm_square": ({}, (2, 128, 128)),
    # Non-square input whose stages are not window multiples (24x20 .. 3x3: padding, odd merging),
    # window 3 (shift 1), pre-norm decoder, convs_dim != hidden_dim (decoder input projections),
    # no qkv bias, another MLP ratio and mask_dim.
    "pre_norm_padded": (
        {
            "model.backbone.swin.window_size": 3,
            "model.backbone.swin.qkv_bias": False,
            "model.backbone.swin.mlp_ratio": 2.0,
            "model.mask_former.pre_norm": True,
            "model.sem_seg_head.convs_dim": 64,
            "model.sem_seg_head.mask_dim": 48,
            "model.sem_seg_head.transformer_enc_layers": 2,
            "model.mask_former.dec_layers": 4,
        },
        (1, 96, 80),
    ),
    # Absolute position embedding (HF adds it un-interpolated: input size == pretrain_img_size).
    "ape": ({"model.backbone.swin.ape": True, "model.backbone.swin.pretrain_img_size": 64}, (2, 64, 64)),
}


def _pair(overrides: dict, image_size: int):
    cfg = tiny_config(num_classes=7, overrides={**_HF_COMPATIBLE, **overrides})
    torch.manual_seed(0)
    ours = build_model(cfg)
    args = model_constructor_args(cfg)
    hf = build_hf_twin(ours, args, image_size=image_size)
    return ours, hf


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_matches_transformers(case: str) -> None:
    overrides, (batch, height, width) = CASES[case]
    ours, hf = _pair(overrides, image_size=height)
    images = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(1))
    for training in (False, True):  # eval: final outputs; train: auxiliary outputs too
        ours.train(training)
        hf.train(training)
        with torch.no_grad():
            mine = ours(images)
            theirs = hf(pixel_values=ours.normalize(images), output_auxiliary_logits=True)
        torch.testing.assert_close(mine["pred_logits"], theirs.class_queries_logits, atol=1e-4, rtol=0)
        torch.testing.assert_close(mine["pred_masks"], theirs.masks_queries_logits, atol=1e-4, rtol=0)
        if training:
            assert len(mine["aux_outputs"]) == len(theirs.auxiliary_logits) == ours.sem_seg_head.predictor.num_layers
            for aux, ref in zip(mine["aux_outputs"], theirs.auxiliary_logits):
                torch.testing.assert_close(aux["pred_logits"], ref["class_queries_logits"], atol=1e-4, rtol=0)
                torch.testing.assert_close(aux["pred_masks"], ref["masks_queries_logits"], atol=1e-4, rtol=0)


def _random_batch(num_classes: int, seed: int):
    """Predictions (final + 3 auxiliary) at 1/4 resolution and 64 px targets of varied counts."""
    g = torch.Generator().manual_seed(seed)
    batch, queries = 2, 10

    def prediction():
        return {
            "pred_logits": torch.randn(batch, queries, num_classes + 1, generator=g) * 2,
            "pred_masks": torch.randn(batch, queries, 16, 16, generator=g) * 3,
        }

    outputs = prediction()
    outputs["aux_outputs"] = [prediction() for _ in range(3)]
    targets = []
    for count in (3, 1):
        labels = torch.randint(0, num_classes, (count,), generator=g)
        masks = torch.rand(count, 64, 64, generator=g) > 0.6
        targets.append({"labels": labels, "masks": masks})
    return outputs, targets


def _loss_cfg():
    return tiny_config(
        num_classes=6,
        overrides={
            "model.mask_former.train_num_points": 300,
            "model.mask_former.oversample_ratio": 3.0,
            "model.mask_former.importance_sample_ratio": 0.75,
            "model.mask_former.class_weight": 2.0,
            "model.mask_former.mask_weight": 5.0,
            "model.mask_former.dice_weight": 4.0,
            "model.mask_former.no_object_weight": 0.2,
        },
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_matcher_matches_transformers(seed: int) -> None:
    cfg = _loss_cfg()
    args = model_constructor_args(cfg)
    outputs, targets = _random_batch(6, seed)
    ours = HungarianMatcher(**args["matcher"])
    theirs = Mask2FormerHungarianMatcher(
        cost_class=args["matcher"]["cost_class"], cost_mask=args["matcher"]["cost_mask"],
        cost_dice=args["matcher"]["cost_dice"], num_points=args["matcher"]["num_points"],
    )
    torch.manual_seed(10 + seed)  # the same random points for both
    mine = ours(outputs, targets)
    torch.manual_seed(10 + seed)
    ref = theirs(
        outputs["pred_masks"], outputs["pred_logits"],
        [t["masks"].float() for t in targets], [t["labels"] for t in targets],
    )
    for (q, t), (rq, rt) in zip(mine, ref):
        assert q.tolist() == rq.tolist() and t.tolist() == rt.tolist()


@pytest.mark.parametrize("seed", [0, 1])
def test_criterion_matches_transformers(seed: int) -> None:
    cfg = _loss_cfg()
    args = model_constructor_args(cfg)
    outputs, targets = _random_batch(6, seed)
    criterion = build_criterion(cfg)
    hf_cfg = hf_config(args, image_size=64)
    weights = {"loss_cross_entropy": 2.0, "loss_mask": 5.0, "loss_dice": 4.0}
    reference = Mask2FormerLoss(hf_cfg, weight_dict=weights)

    torch.manual_seed(100 + seed)  # identical point sampling: same seed, same draw order
    mine = criterion.unweighted_losses(outputs, targets)
    torch.manual_seed(100 + seed)
    theirs = reference(
        masks_queries_logits=outputs["pred_masks"], class_queries_logits=outputs["pred_logits"],
        mask_labels=[t["masks"].float() for t in targets], class_labels=[t["labels"] for t in targets],
        auxiliary_predictions=[
            {"masks_queries_logits": a["pred_masks"], "class_queries_logits": a["pred_logits"]}
            for a in outputs["aux_outputs"]
        ],
    )
    renamed = {k.replace("loss_cross_entropy", "loss_ce"): v for k, v in theirs.items()}
    assert sorted(mine) == sorted(renamed)
    assert len(mine) == 3 * (1 + 3)
    for key, value in renamed.items():
        torch.testing.assert_close(mine[key], value, atol=1e-5, rtol=0, msg=key)

    torch.manual_seed(100 + seed)
    weighted = criterion(outputs, targets)
    for key, value in mine.items():
        base = key.rstrip("_0123456789") if key[-1].isdigit() else key
        factor = {"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 4.0}[base]
        torch.testing.assert_close(weighted[key], value * factor, atol=1e-6, rtol=0)
