"""Criterion and matcher behaviour beyond the HF comparison: empty images, padding, reproducibility."""

from __future__ import annotations

import torch

from mask2former.model.criterion import SetCriterion
from mask2former.model.matcher import HungarianMatcher
from mask2former.model.tiny import build_tiny_criterion


def _criterion(generator=None, **kw) -> SetCriterion:
    args = dict(num_classes=3, class_weight=2.0, mask_weight=5.0, dice_weight=5.0, no_object_weight=0.1,
                num_points=64, oversample_ratio=3.0, importance_sample_ratio=0.75)
    args.update(kw)
    return SetCriterion(matcher=HungarianMatcher(num_points=64, generator=generator), generator=generator, **args)


def _outputs(batch=2, queries=5, requires_grad=True):
    logits = torch.randn(batch, queries, 4, requires_grad=requires_grad)
    masks = torch.randn(batch, queries, 8, 8, requires_grad=requires_grad)
    return {"pred_logits": logits, "pred_masks": masks}


def test_image_without_segments_only_trains_no_object() -> None:
    outputs = _outputs()
    targets = [{"labels": torch.tensor([1]), "masks": torch.ones(1, 32, 32, dtype=torch.bool)},
               {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 32, 32, dtype=torch.bool)}]
    losses = _criterion()(outputs, targets)
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total)
    assert outputs["pred_masks"].grad[1].abs().sum() == 0  # no matched mask in image 1
    assert outputs["pred_logits"].grad[1].abs().sum() > 0  # but all its queries learn "no object"


def test_all_empty_batch_gives_zero_mask_losses() -> None:
    outputs = _outputs()
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 32, 32, dtype=torch.bool)}
    losses = _criterion()(outputs, [empty, empty])
    assert losses["loss_mask"] == 0 and losses["loss_dice"] == 0 and losses["loss_ce"] > 0
    sum(losses.values()).backward()


def test_targets_of_different_sizes_are_padded() -> None:
    targets = [{"labels": torch.tensor([0]), "masks": torch.ones(1, 32, 24, dtype=torch.bool)},
               {"labels": torch.tensor([2]), "masks": torch.ones(1, 28, 32, dtype=torch.bool)}]
    losses = _criterion()(_outputs(), targets)
    assert all(torch.isfinite(v) for v in losses.values())


def test_seeded_generator_makes_losses_reproducible() -> None:
    outputs = _outputs(requires_grad=False)
    targets = [{"labels": torch.tensor([0, 1]), "masks": torch.rand(2, 32, 32) > 0.5}] * 2
    a = _criterion(torch.Generator().manual_seed(4))(outputs, targets)
    b = _criterion(torch.Generator().manual_seed(4))(outputs, targets)
    c = _criterion(torch.Generator().manual_seed(5))(outputs, targets)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in ("loss_mask", "loss_dice"))


def test_no_object_weight_is_the_last_class_weight() -> None:
    criterion = _criterion(no_object_weight=0.25)
    assert criterion.empty_weight.tolist() == [1.0, 1.0, 1.0, 0.25]


def test_deep_supervision_off_ignores_aux_outputs() -> None:
    outputs = _outputs(requires_grad=False)
    outputs["aux_outputs"] = [_outputs(requires_grad=False), _outputs(requires_grad=False)]
    targets = [{"labels": torch.tensor([0]), "masks": torch.ones(1, 32, 32, dtype=torch.bool)}] * 2
    assert len(_criterion()(outputs, targets)) == 9
    assert sorted(_criterion(deep_supervision=False)(outputs, targets)) == ["loss_ce", "loss_dice", "loss_mask"]


def test_matcher_finds_the_obvious_assignment() -> None:
    # Query 2 predicts class 1 on the left half, query 0 class 0 on the right half.
    logits = torch.full((1, 3, 3), -10.0)
    logits[0, 2, 1] = 10.0
    logits[0, 0, 0] = 10.0
    logits[0, 1, 2] = 10.0
    masks = torch.full((1, 3, 8, 8), -10.0)
    masks[0, 2, :, :4] = 10.0
    masks[0, 0, :, 4:] = 10.0
    tgt = torch.zeros(2, 16, 16, dtype=torch.bool)
    tgt[0, :, 8:] = True
    tgt[1, :, :8] = True
    (queries, targets), = HungarianMatcher(num_points=256)({"pred_logits": logits, "pred_masks": masks},
                                                           [{"labels": torch.tensor([0, 1]), "masks": tgt}])
    assert dict(zip(targets.tolist(), queries.tolist())) == {0: 0, 1: 2}


def test_tiny_criterion_builds_from_config() -> None:
    criterion = build_tiny_criterion(num_classes=5)
    assert criterion.num_classes == 5 and criterion.num_points == 1024
