"""mIoU and pixel accuracy from a confusion matrix.

Rule: pixels whose ground truth is `ignore_index` (255) are left out. A class's IoU is
TP / (TP + FP + FN); mIoU averages it over the classes that occur in the ground truth or in the
prediction (union > 0) — a class absent from both says nothing about the model and is skipped, as TAO's
`nanmean` does. Pixel accuracy is correct pixels / labelled pixels. With no labelled pixels both are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SemanticMetrics:
    mIoU: float
    pixel_acc: float
    mean_acc: float  # mean per-class recall over classes present in the ground truth
    iou_per_class: dict[int, float]  # only classes with union > 0

    def as_kpi(self) -> dict[str, float]:
        return {"mIoU": self.mIoU, "pixel_acc": self.pixel_acc}


class SemanticEvaluator:
    """Accumulates a [num_classes, num_classes] confusion matrix (rows: ground truth, columns: prediction).

    `confusion` is a plain int64 tensor, so distributed callers can `all_reduce` it (sum) or `merge`.
    """

    def __init__(self, num_classes: int, *, ignore_index: int = 255):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.confusion = torch.zeros((self.num_classes, self.num_classes), dtype=torch.int64)

    def reset(self) -> None:
        self.confusion.zero_()

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add predictions and ground truth of the same shape ([H, W] or [B, H, W], integer class ids)."""
        pred, target = torch.as_tensor(pred), torch.as_tensor(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != ground truth shape {tuple(target.shape)}")
        valid = target != self.ignore_index
        gt = target[valid].to(torch.int64).cpu()
        pr = pred[valid].to(torch.int64).cpu()
        n = self.num_classes
        if gt.numel() and (int(gt.min()) < 0 or int(gt.max()) >= n):
            raise ValueError(f"ground truth holds class ids outside 0..{n - 1} (and not {self.ignore_index}): "
                             f"{sorted(set(gt[(gt < 0) | (gt >= n)].tolist()))[:10]}")
        if pr.numel() and (int(pr.min()) < 0 or int(pr.max()) >= n):
            raise ValueError(f"prediction holds class ids outside 0..{n - 1}")
        self.confusion += torch.bincount(gt * n + pr, minlength=n * n).view(n, n)  # flat (gt, pred) pairs → matrix

    def merge(self, other: SemanticEvaluator) -> None:
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge evaluators with different num_classes")
        self.confusion += other.confusion

    def compute(self) -> SemanticMetrics:
        conf = self.confusion.to(torch.float64)
        tp = conf.diag()
        gt_total = conf.sum(1)
        pred_total = conf.sum(0)
        union = gt_total + pred_total - tp
        labelled = float(gt_total.sum())
        present = union > 0
        iou = tp[present] / union[present]
        in_gt = gt_total > 0
        return SemanticMetrics(
            mIoU=float(iou.mean()) if present.any() else 0.0,
            pixel_acc=float(tp.sum()) / labelled if labelled else 0.0,
            mean_acc=float((tp[in_gt] / gt_total[in_gt]).mean()) if in_gt.any() else 0.0,
            iou_per_class={int(c): float(v) for c, v in zip(torch.nonzero(present).flatten().tolist(), iou.tolist())},
        )
