"""Mask AP with pycocotools' COCOeval (iouType "segm"): AP@[.5:.95], AP50, AP75 and by size, as 0..1.

Masks are RLE-encoded as they arrive, so memory stays small. Crowd ground truth is passed to COCOeval
as `iscrowd` (detections on it are neither TP nor FP). COCOeval reports -1 where a value is undefined
(no ground truth at all, or none in a size range); those are returned as 0.0 so the numbers can drive a
search.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


@dataclass(frozen=True)
class InstanceMetrics:
    AP: float
    AP50: float
    AP75: float
    APs: float
    APm: float
    APl: float

    def as_kpi(self) -> dict[str, float]:
        return {"AP": self.AP, "AP50": self.AP50, "AP75": self.AP75}


def encode_masks(masks: Any) -> list[dict]:
    """bool [N, H, W] → COCO RLEs (counts as bytes, as pycocotools produces them)."""
    array = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if array.ndim != 3:
        raise ValueError(f"masks must be [N, H, W], got shape {array.shape}")
    if array.shape[0] == 0:
        return []
    # pycocotools wants Fortran-ordered uint8 [H, W, N]
    return mask_utils.encode(np.asfortranarray(array.astype(np.uint8).transpose(1, 2, 0)))


class InstanceEvaluator:
    """Collects ground truth and detections per image; `compute()` runs COCOeval once over all of them.

    Distributed callers gather evaluators (e.g. `all_gather_object`) and `merge` them.
    """

    def __init__(self, thing_ids: Iterable[int], *, max_detections: int = 100):
        self.thing_ids = tuple(sorted(int(c) for c in thing_ids))
        if not self.thing_ids:
            raise ValueError("mask AP needs at least one thing category")
        self.max_detections = int(max_detections)
        self.reset()

    def reset(self) -> None:
        self.images: list[dict] = []
        self.ground_truth: list[dict] = []
        self.detections: list[dict] = []

    def merge(self, other: InstanceEvaluator) -> None:
        renumber = {image["id"]: len(self.images) + i + 1 for i, image in enumerate(other.images)}
        self.images += [{**image, "id": renumber[image["id"]]} for image in other.images]
        first = len(self.ground_truth)
        self.ground_truth += [{**a, "id": first + i + 1, "image_id": renumber[a["image_id"]]}
                              for i, a in enumerate(other.ground_truth)]
        self.detections += [{**d, "image_id": renumber[d["image_id"]]} for d in other.detections]

    def update(self, *, gt_masks: Any, gt_labels: Any, pred_masks: Any, pred_scores: Any, pred_labels: Any,
               gt_iscrowd: Any = None) -> None:
        """Add one image: ground truth masks bool [M, H, W] with labels [M] (and crowd flags [M]), and
        detections bool [K, H, W] with scores [K] and labels [K] (train ids)."""
        gt_rles = encode_masks(gt_masks)
        pred_rles = encode_masks(pred_masks)
        height, width = _hw(gt_masks, pred_masks)
        gt_labels = _as_list(gt_labels, int)
        crowd = _as_list(gt_iscrowd, bool) if gt_iscrowd is not None else [False] * len(gt_labels)
        scores = _as_list(pred_scores, float)
        labels = _as_list(pred_labels, int)
        if not (len(gt_rles) == len(gt_labels) == len(crowd)):
            raise ValueError("gt_masks, gt_labels and gt_iscrowd must have the same length")
        if not (len(pred_rles) == len(scores) == len(labels)):
            raise ValueError("pred_masks, pred_scores and pred_labels must have the same length")
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "height": height, "width": width})
        for rle, label, is_crowd in zip(gt_rles, gt_labels, crowd):
            self.ground_truth.append({
                "id": len(self.ground_truth) + 1, "image_id": image_id, "category_id": label,
                "segmentation": rle, "area": float(mask_utils.area(rle)),
                "bbox": mask_utils.toBbox(rle).tolist(), "iscrowd": int(is_crowd),
            })
        for rle, score, label in zip(pred_rles, scores, labels):
            self.detections.append({"image_id": image_id, "category_id": label, "segmentation": rle,
                                    "score": score})

    def compute(self) -> InstanceMetrics:
        if not self.detections or not self.ground_truth:
            return InstanceMetrics(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and tables
            coco_gt = COCO()
            coco_gt.dataset = {"images": list(self.images), "annotations": list(self.ground_truth),
                               "categories": [{"id": c} for c in self.thing_ids]}
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes([dict(d) for d in self.detections])
            evaluator = COCOeval(coco_gt, coco_dt, iouType="segm")
            evaluator.params.maxDets = [1, 10, self.max_detections]
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        stats = [max(float(v), 0.0) for v in evaluator.stats[:6]]
        return InstanceMetrics(*stats)


def _as_list(values: Any, cast) -> list:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().tolist()
    return [cast(v) for v in np.asarray(values).reshape(-1).tolist()]


def _hw(*mask_sets: Any) -> tuple[int, int]:
    for masks in mask_sets:
        shape = tuple(masks.shape)
        if len(shape) == 3:
            return int(shape[1]), int(shape[2])
    raise ValueError("cannot tell the image size from the masks")
