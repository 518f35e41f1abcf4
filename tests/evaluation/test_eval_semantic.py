"""mIoU / pixel accuracy on constructed cases with hand-computed answers."""

from __future__ import annotations

import pytest
import torch

from mask2former.evaluation import SemanticEvaluator


def test_hand_computed_case():
    gt = torch.tensor([[0, 0, 1, 1],
                       [0, 0, 1, 255],
                       [2, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1],
                         [0, 0, 2, 0],
                         [2, 2, 1, 3]])
    evaluator = SemanticEvaluator(5)
    evaluator.update(pred, gt)
    metrics = evaluator.compute()
    # class 0: TP 3, FP 0, FN 1 → 3/4 ; class 1: TP 2, FP 2 (0,1)+(2,2), FN 1 → 2/5 ; class 2: TP 2, FP 1, FN 1 → 2/4
    # ignored pixels (255) do not count, even where the prediction is 0 or 3; classes 3 and 4 never occur
    assert metrics.iou_per_class == pytest.approx({0: 0.75, 1: 0.4, 2: 0.5})
    assert metrics.mIoU == pytest.approx((0.75 + 0.4 + 0.5) / 3)
    assert metrics.pixel_acc == pytest.approx(7 / 10)
    assert metrics.mean_acc == pytest.approx((3 / 4 + 2 / 3 + 2 / 3) / 3)
    assert metrics.as_kpi() == {"mIoU": metrics.mIoU, "pixel_acc": metrics.pixel_acc}


def test_class_only_predicted_counts_with_zero_iou():
    evaluator = SemanticEvaluator(3)
    evaluator.update(torch.tensor([[0, 2]]), torch.tensor([[0, 0]]))
    metrics = evaluator.compute()
    assert metrics.iou_per_class == {0: 0.5, 2: 0.0}
    assert metrics.mIoU == pytest.approx(0.25) and metrics.pixel_acc == 0.5


def test_batches_accumulate_and_merge():
    gen = torch.Generator().manual_seed(0)
    gts = torch.randint(0, 4, (3, 16, 16), generator=gen)
    gts[gts == 3] = 255
    preds = torch.randint(0, 3, (3, 16, 16), generator=gen)
    batched = SemanticEvaluator(3)
    batched.update(preds, gts)
    one_by_one, merged = SemanticEvaluator(3), SemanticEvaluator(3)
    for p, g in zip(preds, gts):
        one_by_one.update(p, g)
    part = SemanticEvaluator(3)
    part.update(preds[:1], gts[:1])
    merged.update(preds[1:], gts[1:])
    merged.merge(part)
    assert torch.equal(batched.confusion, one_by_one.confusion) and torch.equal(batched.confusion, merged.confusion)
    valid = gts != 255
    assert batched.compute().pixel_acc == pytest.approx(float((preds[valid] == gts[valid]).float().mean()))
    batched.reset()
    assert batched.confusion.sum() == 0 and batched.compute().mIoU == 0.0


def test_bad_inputs():
    evaluator = SemanticEvaluator(3)
    with pytest.raises(ValueError, match=r"prediction shape \(2,\) != ground truth shape \(3,\)"):
        evaluator.update(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match=r"ground truth holds class ids outside 0..2 .*\[7\]"):
        evaluator.update(torch.zeros(2, dtype=torch.long), torch.tensor([7, 255]))
    with pytest.raises(ValueError, match=r"prediction holds class ids outside 0..2"):
        evaluator.update(torch.tensor([5]), torch.tensor([0]))
