"""Validation metrics of a training run: post-process each batch and feed the evaluators.

Every mode reports `mIoU` and `pixel_acc` (from the semantic scores the post-processor returns in every
mode); panoptic adds `PQ` (plus SQ/RQ and the things/stuff split), instance adds mask `AP`. All metrics
are fractions in 0..1.

One comparable objective: every metric is computed at each image's ORIGINAL resolution. Predictions are
upsampled to the padded input, cropped to the unpadded image and resized back to the original height and
width (as Detectron2's `sem_seg_postprocess` does); the ground truth (`truth_sem_seg`, `panoptic`,
`instances` in each batch meta, see `mask2former.data.base`) is never resized. So the test-time size
(`dataset.augmentation.test_min_size` / `test_max_size`, `target_size`) is only a model input: trials that
search it are still ranked against the same pixels. PQ follows panopticapi's `pq_compute`
(`mask2former.evaluation.panoptic`), AP pycocotools' COCOeval.

In a multi-process run each process accumulates its own share; `compute()` sums the evaluators' state
tensors over processes (all_reduce), or gathers the instance predictions for AP, before reading metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist

from mask2former.data.label_map import IGNORE_INDEX, Categories
from mask2former.evaluation.instance import InstanceEvaluator
from mask2former.evaluation.panoptic import PanopticEvaluator
from mask2former.evaluation.semantic import SemanticEvaluator
from mask2former.model.postprocessing import Postprocessor


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if not _distributed():
        return tensor
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    reduced = tensor.to(device)
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced.to(tensor.device)


class MetricsSuite:
    """Implements the system's `ValidationSuite` for one `model.mode`.

    Args:
        mode: semantic | panoptic | instance.
        categories: the run's label map (train ids, isthing).
        num_classes: model.sem_seg_head.num_classes (size of the semantic confusion matrix).
        postprocessor: the model package's `Postprocessor` configured with the spec's thresholds.
    """

    def __init__(self, *, mode: str, categories: Categories, num_classes: int, postprocessor: Postprocessor) -> None:
        self.mode = mode
        self.categories = categories
        self.postprocessor = postprocessor
        self.semantic = SemanticEvaluator(num_classes, ignore_index=IGNORE_INDEX)
        self.panoptic = (PanopticEvaluator({c.train_id: c.isthing for c in categories})
                         if mode == "panoptic" else None)
        self.instance = (InstanceEvaluator(sorted(categories.thing_train_ids),
                                           max_detections=postprocessor.test_topk_per_image)
                         if mode == "instance" else None)

    def reset(self) -> None:
        self.semantic.reset()
        if self.panoptic is not None:
            self.panoptic.reset()
        if self.instance is not None:
            self.instance.reset()

    @torch.no_grad()
    def update(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> None:
        input_size = tuple(int(s) for s in batch["images"].shape[-2:])
        metas = batch["metas"]
        image_sizes = [tuple(int(s) for s in meta["image_size"]) for meta in metas]
        original_sizes = [tuple(int(s) for s in meta["orig_size"]) for meta in metas]
        results = self.postprocessor(dict(outputs), input_size=input_size, image_sizes=image_sizes,
                                     output_sizes=original_sizes)
        for result, meta in zip(results, metas):
            prediction = result["sem_seg"].argmax(0)  # [K, H0, W0] scores -> [H0, W0] class ids
            self.semantic.update(prediction.cpu(), original_truth(meta).cpu())
            if self.panoptic is not None and meta.get("panoptic") is not None:
                panoptic = result["panoptic_seg"]
                self.panoptic.update(panoptic.id_map.cpu(), panoptic.segments_info,
                                     meta["panoptic"]["id_map"].cpu(), meta["panoptic"]["segments"])
            if self.instance is not None and meta.get("instances") is not None:
                predicted, truth = result["instances"], meta["instances"]
                self.instance.update(gt_masks=truth["masks"].cpu(), gt_labels=truth["labels"].cpu(),
                                     gt_iscrowd=truth["iscrowd"].cpu(), pred_masks=predicted.masks.cpu(),
                                     pred_scores=predicted.scores.cpu(), pred_labels=predicted.labels.cpu())

    def compute(self) -> dict[str, float]:
        self.semantic.confusion = _all_reduce_sum(self.semantic.confusion)
        metrics: dict[str, float] = dict(self.semantic.compute().as_kpi())
        if self.panoptic is not None:
            self.panoptic.stats = _all_reduce_sum(self.panoptic.stats)
            metrics.update(self.panoptic.compute().as_kpi())
        if self.instance is not None:
            if _distributed():
                shares: list[Any] = [None] * dist.get_world_size()
                dist.all_gather_object(shares, self.instance)
                merged = InstanceEvaluator(self.instance.thing_ids, max_detections=self.instance.max_detections)
                for share in shares:
                    merged.merge(share)
                self.instance = merged
            metrics.update(self.instance.compute().as_kpi())
        return metrics



def original_truth(meta: Mapping[str, Any]) -> torch.Tensor:
    """The image's semantic ground truth at its original size (LongTensor [H0, W0]).

    A batch without it (a data pipeline that predates original-size ground truth) is refused rather than
    silently scored at the transformed size, which would make trials with different test sizes incomparable.
    """
    truth = meta.get("truth_sem_seg")
    if truth is None:
        raise ValueError(f"evaluation item {meta.get('file_name')!r} carries no original-size ground truth "
                         "('truth_sem_seg'); metrics are only computed at the original resolution")
    return truth
