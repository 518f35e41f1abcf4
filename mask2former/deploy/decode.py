"""Read TAO-named graph outputs back into the per-image results the PyTorch post-processing returns.

`mask2former.export.heads` documents the outputs. This module is the consumer side of that contract for
TAO-style clients (anything that only has `pred_masks` / `pred_scores` / `pred_classes` / `prob_masks`),
and the tests use it to prove the exported post-processing equals `mask2former.model.postprocessing`:

    semantic  -> {"sem_seg": [K, H, W] scores}
    panoptic  -> {"panoptic_seg": PanopticPrediction}   (same merge rules as `panoptic_inference`)
    instance  -> {"instances": InstancePrediction}

The deploy evaluate/inference actions do not need it: they post-process the raw outputs with the PyTorch
`Postprocessor` itself (see `mask2former.deploy.backends`). A panoptic or instance graph carries no
per-class score map, so "sem_seg" is only decoded for semantic graphs.

`output_sizes` resizes each image's maps (bilinear for scores / probabilities, nearest for binary masks)
when they differ from the export resolution.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from mask2former.model.postprocessing import InstancePrediction, PanopticPrediction


def _tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else torch.from_numpy(np.asarray(value))


def _output_size(output_sizes: Sequence[tuple[int, int]] | None, index: int) -> tuple[int, int] | None:
    """(H, W) image `index` is returned at, or None to keep the graph's size."""
    if output_sizes is None:
        return None
    height, width = output_sizes[index]
    return height, width


def _resize(maps: Tensor, size: tuple[int, int] | None, *, mode: str) -> Tensor:
    """[N, H, W] -> [N, *size]."""
    if size is None or tuple(maps.shape[-2:]) == tuple(size):
        return maps
    if mode == "nearest":
        return F.interpolate(maps[None].float(), size=tuple(size), mode="nearest")[0]
    return F.interpolate(maps[None].float(), size=tuple(size), mode="bilinear", align_corners=False)[0]


def panoptic_from_probabilities(
    prob_masks: Tensor,
    masks: Tensor,
    scores: Tensor,
    classes: Tensor,
    *,
    num_classes: int,
    thing_ids: Collection[int],
    object_mask_threshold: float,
    overlap_threshold: float,
) -> PanopticPrediction:
    """One image: prob_masks/masks [Q, H, W], scores/classes [Q] (class `num_classes` = no object).

    The rules of `mask2former.model.postprocessing.panoptic_inference`, on probabilities: keep confident
    non-void queries, give each pixel to the query with the highest score * mask probability, drop segments
    that keep < `overlap_threshold` of their own mask (probability >= 0.5), merge segments of one stuff class.
    """
    keep = classes.long().ne(num_classes) & (scores > object_mask_threshold)
    cur_scores, cur_classes = scores[keep], classes[keep].long()
    cur_prob, cur_masks = prob_masks[keep], masks[keep]
    height, width = masks.shape[-2:]
    id_map = torch.zeros((height, width), dtype=torch.int32)
    segments: list[dict] = []
    if cur_masks.shape[0] == 0:
        return PanopticPrediction(id_map, segments)
    owner = cur_prob.argmax(0)  # [H, W] index into kept queries
    things = {int(t) for t in thing_ids}
    stuff_segment: dict[int, int] = {}
    for k in range(cur_classes.shape[0]):
        category = int(cur_classes[k])
        is_thing = category in things
        own_mask = cur_masks[k] >= 0.5
        owned = owner == k
        visible = owned & own_mask
        owned_area, original_area = int(owned.sum()), int(own_mask.sum())
        if owned_area == 0 or original_area == 0 or int(visible.sum()) == 0:
            continue
        if owned_area / original_area < overlap_threshold:
            continue
        if not is_thing and category in stuff_segment:
            id_map[visible] = stuff_segment[category]
            continue
        segment_id = len(segments) + 1
        if not is_thing:
            stuff_segment[category] = segment_id
        id_map[visible] = segment_id
        segments.append({"id": segment_id, "category_id": category, "isthing": is_thing,
                         "score": float(cur_scores[k])})
    return PanopticPrediction(id_map, segments)


def decode_tao_outputs(
    outputs: Mapping[str, Any],
    *,
    mode: str,
    num_classes: int,
    thing_ids: Collection[int] = (),
    object_mask_threshold: float = 0.4,
    overlap_threshold: float = 0.5,
    output_sizes: Sequence[tuple[int, int]] | None = None,
) -> list[dict]:
    """Batch outputs (numpy or tensors, by TAO name) -> one result dict per image (see module docstring)."""
    results: list[dict] = []
    if mode == "semantic":
        scores = _tensor(outputs["pred_masks"]).float()
        for b in range(scores.shape[0]):
            size = _output_size(output_sizes, b)
            results.append({"sem_seg": _resize(scores[b], size, mode="bilinear")})
        return results
    if mode == "panoptic":
        prob_masks = _tensor(outputs["prob_masks"]).float()
        masks = _tensor(outputs["pred_masks"]).float()
        scores = _tensor(outputs["pred_scores"]).float()
        classes = _tensor(outputs["pred_classes"]).long()
        for b in range(masks.shape[0]):
            size = _output_size(output_sizes, b)
            results.append({"panoptic_seg": panoptic_from_probabilities(
                _resize(prob_masks[b], size, mode="bilinear"), _resize(masks[b], size, mode="bilinear"),
                scores[b], classes[b], num_classes=num_classes, thing_ids=thing_ids,
                object_mask_threshold=object_mask_threshold, overlap_threshold=overlap_threshold)})
        return results
    if mode == "instance":
        masks = _tensor(outputs["pred_masks"])
        scores = _tensor(outputs["pred_scores"]).float()
        classes = _tensor(outputs["pred_classes"]).long()
        for b in range(masks.shape[0]):
            size = _output_size(output_sizes, b)
            binary = _resize(masks[b].float(), size, mode="nearest") > 0.5
            results.append({"instances": InstancePrediction(masks=binary, scores=scores[b], labels=classes[b])})
        return results
    raise ValueError(f"mode must be semantic, panoptic or instance, got {mode!r}")
