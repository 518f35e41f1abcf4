"""Panoptic quality (PQ = SQ × RQ) with the things / stuff split, per the COCO panoptic definition
(Kirillov et al., "Panoptic Segmentation", 2019) and exactly as COCO's panopticapi `pq_compute` counts it:

- A predicted and a ground-truth segment of the same category match when IoU > 0.5 (matches are then
  unique). Pixels that are void in the ground truth (id 0) are removed from the prediction's side of the
  union: IoU = |P ∩ G| / (|P| + |G| − |P ∩ G| − |P ∩ void|).
- Crowd ground-truth segments are never matched and never counted as false negatives. Every other listed
  ground-truth segment that is not matched is a false negative (even one without pixels).
- An unmatched prediction is a false positive unless more than half of it lies on void pixels plus the
  crowd region of its own category (panopticapi keeps one crowd segment per category: the last one listed);
  then it is ignored.
- Per category: PQ = ΣIoU(TP) / (TP + ½FP + ½FN), SQ = ΣIoU / TP (0 without TP),
  RQ = TP / (TP + ½FP + ½FN). Averages run over categories with TP + FP + FN > 0.

Segment ids are local to each image; categories are train ids. Areas are pixel counts of the id maps
(panopticapi reads the ground truth's area from the JSON, which equals the pixel count in a well-formed
file). Ground-truth pixels whose id is not listed are neither a segment nor void, as in panopticapi (our
loaders already turn them into void). Predicted segments whose category is not one of the evaluator's
categories are treated as unassigned pixels (panopticapi would refuse the file; there is no class to count
them against). Scores are only comparable across trials when computed at each image's original resolution,
which `mask2former.training.validation` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

VOID = 0


@dataclass(frozen=True)
class PanopticMetrics:
    PQ: float
    SQ: float
    RQ: float
    PQ_th: float
    SQ_th: float
    RQ_th: float
    PQ_st: float
    SQ_st: float
    RQ_st: float
    per_class: dict[int, dict[str, float]]  # train id → {"PQ", "SQ", "RQ", "TP", "FP", "FN"}

    def as_kpi(self) -> dict[str, float]:
        return {"PQ": self.PQ, "SQ": self.SQ, "RQ": self.RQ, "PQ_th": self.PQ_th, "PQ_st": self.PQ_st}


class PanopticEvaluator:
    """Accumulates per-category TP / FP / FN / ΣIoU over images.

    `stats` is a float64 tensor [4, K] (rows TP, FP, FN, ΣIoU; columns in `category_ids` order) that
    distributed callers may `all_reduce` (sum) or `merge`.
    """

    def __init__(self, categories: Mapping[int, bool]):
        """`categories`: train id → isthing, for every category that may appear."""
        self.category_ids = tuple(sorted(int(c) for c in categories))
        self.isthing = {int(c): bool(t) for c, t in categories.items()}
        self._column = {c: i for i, c in enumerate(self.category_ids)}
        self.stats = torch.zeros((4, len(self.category_ids)), dtype=torch.float64)

    def reset(self) -> None:
        self.stats.zero_()

    def merge(self, other: PanopticEvaluator) -> None:
        if other.category_ids != self.category_ids:
            raise ValueError("cannot merge evaluators with different categories")
        self.stats += other.stats

    def update(self, pred_id_map: Any, pred_segments: Sequence[Mapping[str, Any]], gt_id_map: Any,
               gt_segments: Sequence[Mapping[str, Any]]) -> None:
        """Add one image.

        pred_id_map / gt_id_map: int [H, W] segment ids (0 = nothing / void); pred_segments: [{"id",
        "category_id"}]; gt_segments: [{"id", "category_id", "iscrowd"}]. Predicted pixels whose id is not
        listed count as 0; ground-truth pixels whose id is not listed belong to no segment (see module doc).
        """
        pred = _as_numpy(pred_id_map)
        gt = _as_numpy(gt_id_map)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} != ground truth shape {gt.shape}")
        # A predicted class outside the label map (possible with contiguous_id=false, where class indices
        # between the raw ids exist) has no category to be counted against: its pixels count as unassigned.
        pred_cat = {int(s["id"]): int(s["category_id"]) for s in pred_segments
                    if int(s["category_id"]) in self._column}
        gt_info = {int(s["id"]): (int(s["category_id"]), bool(s.get("iscrowd", False))) for s in gt_segments}
        for cat, _ in gt_info.values():
            if cat not in self._column:
                raise ValueError(f"ground-truth category {cat} is not one of the evaluator's categories "
                                 f"{self.category_ids}")
        if VOID in pred_cat or VOID in gt_info:
            raise ValueError("segment id 0 is reserved for void / unassigned pixels")
        pred = np.where(np.isin(pred, list(pred_cat)), pred, VOID)

        offset = int(pred.max()) + 1
        pairs, counts = np.unique(gt.astype(np.int64) * offset + pred, return_counts=True)
        overlap: dict[tuple[int, int], int] = {}
        gt_area: dict[int, int] = {}
        pred_area: dict[int, int] = {}
        for pair, count in zip(pairs.tolist(), counts.tolist()):
            g, p = divmod(pair, offset)
            overlap[(g, p)] = count
            gt_area[g] = gt_area.get(g, 0) + count
            pred_area[p] = pred_area.get(p, 0) + count

        tp, fp, fn, iou_sum = (np.zeros(len(self.category_ids)) for _ in range(4))
        matched_gt, matched_pred = set(), set()
        for (g, p), inter in overlap.items():
            if g not in gt_info or p == VOID:
                continue
            g_cat, g_crowd = gt_info[g]
            if g_crowd or g_cat != pred_cat[p]:
                continue
            union = pred_area[p] + gt_area[g] - inter - overlap.get((VOID, p), 0)
            iou = inter / union
            if iou > 0.5:
                column = self._column[g_cat]
                tp[column] += 1
                iou_sum[column] += iou
                matched_gt.add(g)
                matched_pred.add(p)

        crowd_of_category: dict[int, int] = {}  # one crowd segment per category: the last listed, as panopticapi
        for g, (cat, crowd) in gt_info.items():
            if g in matched_gt:
                continue
            if crowd:
                crowd_of_category[cat] = g
            else:
                fn[self._column[cat]] += 1
        for p, cat in pred_cat.items():
            if p in matched_pred or p not in pred_area:
                continue
            ignored = overlap.get((VOID, p), 0)
            if cat in crowd_of_category:
                ignored += overlap.get((crowd_of_category[cat], p), 0)
            if ignored / pred_area[p] > 0.5:
                continue
            fp[self._column[cat]] += 1
        self.stats += torch.from_numpy(np.stack([tp, fp, fn, iou_sum]))

    def compute(self) -> PanopticMetrics:
        tp, fp, fn, iou_sum = (self.stats[i].numpy() for i in range(4))
        per_class: dict[int, dict[str, float]] = {}
        for column, cat in enumerate(self.category_ids):
            denominator = tp[column] + 0.5 * fp[column] + 0.5 * fn[column]
            if denominator == 0:
                continue
            per_class[cat] = {
                "PQ": iou_sum[column] / denominator,
                "SQ": iou_sum[column] / tp[column] if tp[column] else 0.0,
                "RQ": tp[column] / denominator,
                "TP": float(tp[column]), "FP": float(fp[column]), "FN": float(fn[column]),
            }

        def average(cats: Iterable[int]) -> tuple[float, float, float]:
            rows = [per_class[c] for c in cats if c in per_class]
            if not rows:
                return 0.0, 0.0, 0.0
            return tuple(float(np.mean([r[k] for r in rows])) for k in ("PQ", "SQ", "RQ"))  # type: ignore

        pq, sq, rq = average(self.category_ids)
        pq_th, sq_th, rq_th = average(c for c in self.category_ids if self.isthing[c])
        pq_st, sq_st, rq_st = average(c for c in self.category_ids if not self.isthing[c])
        return PanopticMetrics(PQ=pq, SQ=sq, RQ=rq, PQ_th=pq_th, SQ_th=sq_th, RQ_th=rq_th, PQ_st=pq_st,
                               SQ_st=sq_st, RQ_st=rq_st,
                               per_class={c: {k: float(v) for k, v in d.items()} for c, d in per_class.items()})


def _as_numpy(id_map: Any) -> np.ndarray:
    if isinstance(id_map, torch.Tensor):
        id_map = id_map.detach().cpu().numpy()
    array = np.asarray(id_map)
    if array.ndim != 2:
        raise ValueError(f"segment id maps must be [H, W], got shape {array.shape}")
    return array.astype(np.int64)
