"""Turn (class logits, mask logits) of one image into semantic, panoptic or instance results.

Class ids here are train ids (0..K-1, the model's class index); logit K is "no object". The
functions take one image's outputs already resized to the wanted resolution
(`resize_mask_logits` does the original's upsample -> crop padding -> resize to output size).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

MODES = ("semantic", "panoptic", "instance")


@dataclass(frozen=True)
class PanopticPrediction:
    """id_map: [H, W] int32, 0 = void, segment ids from 1; segments_info: one dict per segment
    {"id", "category_id" (train id), "isthing", "score"}."""

    id_map: Tensor
    segments_info: list[dict]


@dataclass(frozen=True)
class InstancePrediction:
    """masks: [N, H, W] bool; scores: [N] float; labels: [N] int64 train ids."""

    masks: Tensor
    scores: Tensor
    labels: Tensor


def resize_mask_logits(
    mask_logits: Tensor, *, input_size: tuple[int, int], image_size: tuple[int, int], output_size: tuple[int, int]
) -> Tensor:
    """[Q, h, w] logits at 1/stride of the padded input -> [Q, *output_size].

    Upsample to the padded input (`input_size`), drop the padding (keep `image_size`, the part
    that held the resized image), then resize to the original image (`output_size`).
    """
    x = F.interpolate(mask_logits[None], size=tuple(input_size), mode="bilinear", align_corners=False)
    x = x[:, :, : image_size[0], : image_size[1]]
    if tuple(x.shape[-2:]) != tuple(output_size):
        x = F.interpolate(x, size=tuple(output_size), mode="bilinear", align_corners=False)
    return x[0]


def semantic_inference(mask_cls: Tensor, mask_pred: Tensor) -> Tensor:
    """[Q, K+1], [Q, H, W] -> per-class scores [K, H, W] (argmax over K gives the label map)."""
    probs = mask_cls.softmax(-1)[:, :-1]
    return torch.einsum("qc,qhw->chw", probs, mask_pred.sigmoid())


def panoptic_inference(
    mask_cls: Tensor,
    mask_pred: Tensor,
    *,
    thing_ids: Collection[int],
    object_mask_threshold: float,
    overlap_threshold: float,
) -> PanopticPrediction:
    """Keep confident non-void queries, give each pixel to the query with the highest
    score * mask probability, drop segments that keep < `overlap_threshold` of their own mask,
    and merge all segments of one stuff class."""
    num_classes = mask_cls.shape[-1] - 1
    scores, labels = mask_cls.softmax(-1).max(-1)
    probs = mask_pred.sigmoid()
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    cur_scores, cur_classes, cur_masks = scores[keep], labels[keep], probs[keep]
    height, width = mask_pred.shape[-2:]
    id_map = torch.zeros((height, width), dtype=torch.int32, device=mask_pred.device)
    segments: list[dict] = []
    if cur_masks.shape[0] == 0:
        return PanopticPrediction(id_map, segments)
    owner = (cur_scores.view(-1, 1, 1) * cur_masks).argmax(0)  # [H, W] index into kept queries
    things = set(int(t) for t in thing_ids)
    stuff_segment: dict[int, int] = {}
    for k in range(cur_classes.shape[0]):
        category = int(cur_classes[k])
        is_thing = category in things
        own_mask = cur_masks[k] >= 0.5
        visible = (owner == k) & own_mask
        owned_area = int((owner == k).sum())
        original_area = int(own_mask.sum())
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
        segments.append({"id": segment_id, "category_id": category, "isthing": is_thing, "score": float(cur_scores[k])})
    return PanopticPrediction(id_map, segments)


def instance_inference(
    mask_cls: Tensor, mask_pred: Tensor, *, topk: int, thing_ids: Collection[int] | None = None
) -> InstancePrediction:
    """Top-`topk` (query, class) pairs by class probability; masks are logits > 0 and scores are
    class probability * mean mask probability inside the mask. With `thing_ids` (panoptic
    datasets), only thing classes are kept."""
    num_queries, num_classes = mask_cls.shape[0], mask_cls.shape[-1] - 1
    probs = mask_cls.softmax(-1)[:, :-1]
    labels = torch.arange(num_classes, device=mask_cls.device).repeat(num_queries)  # [Q*K]
    k = min(topk, num_queries * num_classes)
    scores, flat = probs.flatten().topk(k, sorted=False)
    labels = labels[flat]
    queries = torch.div(flat, num_classes, rounding_mode="floor")
    logits = mask_pred[queries]
    if thing_ids is not None:
        is_thing = torch.tensor([int(c) in set(int(t) for t in thing_ids) for c in labels.tolist()], dtype=torch.bool,
                                device=labels.device)
        scores, labels, logits = scores[is_thing], labels[is_thing], logits[is_thing]
    masks = logits > 0
    flat_masks = masks.flatten(1).to(logits.dtype)
    mask_scores = (logits.sigmoid().flatten(1) * flat_masks).sum(1) / (flat_masks.sum(1) + 1e-6)
    return InstancePrediction(masks=masks, scores=scores * mask_scores, labels=labels)


class Postprocessor:
    """Batch outputs -> per-image results for the configured mode.

    Every result has "sem_seg" ([K, H, W] scores; mIoU is reported in every mode) and, per
    mode, "panoptic_seg" (`PanopticPrediction`) or "instances" (`InstancePrediction`).
    """

    def __init__(
        self,
        *,
        mode: str,
        thing_ids: Collection[int] = (),
        object_mask_threshold: float = 0.4,
        overlap_threshold: float = 0.5,
        test_topk_per_image: int = 100,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.thing_ids = frozenset(int(t) for t in thing_ids)
        self.object_mask_threshold = object_mask_threshold
        self.overlap_threshold = overlap_threshold
        self.test_topk_per_image = test_topk_per_image

    @torch.no_grad()
    def __call__(
        self,
        outputs: dict,
        *,
        input_size: tuple[int, int],
        image_sizes: Sequence[tuple[int, int]],
        output_sizes: Sequence[tuple[int, int]] | None = None,
    ) -> list[dict]:
        """outputs: the model's {"pred_logits": [B, Q, K+1], "pred_masks": [B, Q, h, w]};
        input_size: the padded batch size (H, W); image_sizes: each image's unpadded size in the
        batch; output_sizes: sizes to return (default: image_sizes)."""
        results = []
        for b, image_size in enumerate(image_sizes):
            height, width = output_sizes[b] if output_sizes is not None else image_size
            mask_pred = resize_mask_logits(
                outputs["pred_masks"][b].float(), input_size=input_size, image_size=image_size, output_size=(height, width)
            )
            mask_cls = outputs["pred_logits"][b].float()
            result: dict = {"sem_seg": semantic_inference(mask_cls, mask_pred)}
            if self.mode == "panoptic":
                result["panoptic_seg"] = panoptic_inference(
                    mask_cls, mask_pred, thing_ids=self.thing_ids,
                    object_mask_threshold=self.object_mask_threshold, overlap_threshold=self.overlap_threshold,
                )
            elif self.mode == "instance":
                result["instances"] = instance_inference(mask_cls, mask_pred, topk=self.test_topk_per_image)
            results.append(result)
        return results
