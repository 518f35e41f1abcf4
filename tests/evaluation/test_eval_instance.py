"""Mask AP equals a direct pycocotools evaluation of the same predictions on the annotation file itself."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mask2former.config import AugmentationConfig, DatasetConfig, DatasetSplitConfig
from mask2former.data import build_dataset
from mask2former.data.synth import write_synthetic_dataset
from mask2former.evaluation import InstanceEvaluator


def _fake_predictions(gt_masks: np.ndarray, gt_labels: list[int], rng: np.random.Generator):
    """Perturbed copies of the ground truth (shifted, class-swapped, missed) plus spurious detections."""
    masks, scores, labels = [], [], []
    h, w = gt_masks.shape[1:]
    for mask, label in zip(gt_masks, gt_labels):
        if rng.random() < 0.15:
            continue
        shift = (int(rng.integers(-3, 4)), int(rng.integers(-3, 4)))
        masks.append(np.roll(mask, shift, axis=(0, 1)))
        labels.append(label if rng.random() < 0.85 else int(rng.choice([1, 2, 3])))
        scores.append(float(rng.uniform(0.3, 1.0)))
    for _ in range(int(rng.integers(0, 3))):
        top, left = rng.integers(0, h - 10), rng.integers(0, w - 10)
        spurious = np.zeros((h, w), bool)
        spurious[top:top + 10, left:left + 10] = True
        masks.append(spurious)
        labels.append(int(rng.choice([1, 2, 3])))
        scores.append(float(rng.uniform(0.0, 0.6)))
    stacked = np.stack(masks) if masks else np.zeros((0, h, w), bool)
    return stacked, np.array(scores), np.array(labels)


def test_ap_equals_direct_pycocotools_on_the_annotation_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MASK2FORMER_CACHE", str(tmp_path / "cache"))
    written = write_synthetic_dataset(tmp_path / "coco", fmt="coco", num_images=12, seed=0, size=64)
    split = DatasetSplitConfig(**written.dataset_section())
    cfg = DatasetConfig(train=split, val=split, label_map=str(written.label_map), contiguous_id=False,
                        augmentation=AugmentationConfig(test_min_size=64, test_max_size=64))
    dataset = build_dataset(split, dataset_cfg=cfg, mode="instance", is_train=False)
    evaluator = InstanceEvaluator(dataset.categories.thing_train_ids)
    results = []
    rng = np.random.default_rng(1)
    saw_crowd = False
    for index in range(len(dataset)):
        item = dataset[index]
        gt = item["instances"]
        saw_crowd |= bool(gt["iscrowd"].any())
        keep = ~gt["iscrowd"]
        masks, scores, labels = _fake_predictions(gt["masks"][keep].numpy(), gt["labels"][keep].tolist(), rng)
        evaluator.update(gt_masks=gt["masks"], gt_labels=gt["labels"], gt_iscrowd=gt["iscrowd"],
                         pred_masks=torch.from_numpy(masks), pred_scores=torch.from_numpy(scores),
                         pred_labels=torch.from_numpy(labels))
        for mask, score, label in zip(masks, scores, labels):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            results.append({"image_id": item["image_id"], "category_id": int(label), "segmentation": rle,
                            "score": float(score)})
    assert saw_crowd, "the data must contain crowd annotations"
    ours = evaluator.compute()

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(written.split_fields["instance_json"])
        coco_dt = coco_gt.loadRes(results)
        direct = COCOeval(coco_gt, coco_dt, iouType="segm")
        direct.evaluate()
        direct.accumulate()
        direct.summarize()
    assert 0.1 < ours.AP < 0.95
    assert (ours.AP, ours.AP50, ours.AP75) == pytest.approx(tuple(direct.stats[:3]), abs=1e-12)
    assert (ours.APs, ours.APm, ours.APl) == pytest.approx(tuple(max(v, 0.0) for v in direct.stats[3:6]), abs=1e-12)


def _squares(n: int, size: int = 32) -> torch.Tensor:
    masks = torch.zeros((n, size, size), dtype=torch.bool)
    for i in range(n):
        masks[i, 4 * i: 4 * i + 4, 4 * i: 4 * i + 4] = True
    return masks


def test_perfect_empty_and_merged():
    gt = _squares(3)
    perfect = InstanceEvaluator([0, 1])
    perfect.update(gt_masks=gt, gt_labels=[0, 1, 1], pred_masks=gt, pred_scores=[0.9, 0.8, 0.7], pred_labels=[0, 1, 1])
    assert perfect.compute().AP == pytest.approx(1.0)
    wrong = InstanceEvaluator([0, 1])
    wrong.update(gt_masks=gt, gt_labels=[0, 1, 1], pred_masks=gt, pred_scores=[0.9, 0.8, 0.7], pred_labels=[1, 0, 0])
    assert wrong.compute().AP == 0.0  # every detection has the wrong class
    empty = InstanceEvaluator([0])
    empty.update(gt_masks=gt[:1], gt_labels=[0], pred_masks=torch.zeros((0, 32, 32), dtype=torch.bool),
                 pred_scores=[], pred_labels=[])
    assert empty.compute().AP == 0.0
    merged = InstanceEvaluator([0, 1])
    merged.merge(perfect)
    merged.merge(wrong)
    both = InstanceEvaluator([0, 1])
    both.update(gt_masks=gt, gt_labels=[0, 1, 1], pred_masks=gt, pred_scores=[0.9, 0.8, 0.7], pred_labels=[0, 1, 1])
    both.update(gt_masks=gt, gt_labels=[0, 1, 1], pred_masks=gt, pred_scores=[0.9, 0.8, 0.7], pred_labels=[1, 0, 0])
    assert merged.compute() == both.compute()
    with pytest.raises(ValueError, match="pred_masks, pred_scores and pred_labels must have the same length"):
        both.update(gt_masks=gt, gt_labels=[0, 1, 1], pred_masks=gt, pred_scores=[0.9], pred_labels=[0, 1, 1])
    with pytest.raises(ValueError, match="mask AP needs at least one thing category"):
        InstanceEvaluator([])
