"""Semantic, panoptic and instance post-processing on hand-built predictions."""

from __future__ import annotations

import pytest
import torch

from mask2former.model.postprocessing import (
    Postprocessor,
    instance_inference,
    panoptic_inference,
    resize_mask_logits,
    semantic_inference,
)

BIG = 20.0  # a logit that makes probabilities ~0/1


def _logits(*classes: int, num_classes: int = 4, confidence: float = BIG) -> torch.Tensor:
    """One row per query with a confident class (num_classes = no object)."""
    out = torch.zeros(len(classes), num_classes + 1)
    for q, c in enumerate(classes):
        out[q, c] = confidence
    return out


def _region(rows: slice, cols: slice, size: int = 8) -> torch.Tensor:
    m = torch.full((size, size), -BIG)
    m[rows, cols] = BIG
    return m


def test_semantic_inference_assigns_each_half() -> None:
    masks = torch.stack([_region(slice(None), slice(0, 4)), _region(slice(None), slice(4, 8))])
    scores = semantic_inference(_logits(2, 0), masks)
    assert scores.shape == (4, 8, 8)
    label = scores.argmax(0)
    assert (label[:, :4] == 2).all() and (label[:, 4:] == 0).all()


def test_panoptic_things_stuff_merge_and_thresholds() -> None:
    # q0 thing (class 0) top-left; q1 thing (class 0) top-right; q2, q3 stuff (class 3) bottom halves
    # (merged into one segment); q4 no-object; q5 low confidence (dropped by the threshold);
    # q6 mostly hidden behind q0 (dropped by overlap).
    masks = torch.stack([
        _region(slice(0, 4), slice(0, 4)),
        _region(slice(0, 4), slice(4, 8)),
        _region(slice(4, 8), slice(0, 4)),
        _region(slice(4, 8), slice(4, 8)),
        _region(slice(0, 8), slice(0, 8)),
        _region(slice(0, 8), slice(0, 8)),
        _region(slice(0, 5), slice(0, 4)),
    ])
    logits = torch.cat([
        _logits(0, 0, 3, 3, 4),
        torch.tensor([[0.5, 0.0, 0.0, 0.0, 0.0]]),  # max prob ~0.25 < 0.4
        _logits(1, confidence=5.0),  # score ~0.93, lower than q0's, so it loses the overlap
    ])
    result = panoptic_inference(logits, masks, thing_ids={0, 1}, object_mask_threshold=0.4, overlap_threshold=0.5)
    info = {s["id"]: s for s in result.segments_info}
    assert [(s["category_id"], s["isthing"]) for s in result.segments_info] == [(0, True), (0, True), (3, False)]
    id_map = result.id_map
    assert id_map.dtype == torch.int32
    assert (id_map[:4, :4] == 1).all() and (id_map[:4, 4:] == 2).all() and (id_map[4:, :] == 3).all()
    assert all(0.99 < s["score"] <= 1.0 for s in info.values())
    # q6 wins no pixel at all (q0 and the stuff query score higher everywhere it covers), so even a
    # low overlap threshold does not bring it back.
    loose = panoptic_inference(logits, masks, thing_ids={0, 1}, object_mask_threshold=0.4, overlap_threshold=0.1)
    assert len(loose.segments_info) == 3
    # Raising the object threshold above every score leaves an empty (void) map.
    empty = panoptic_inference(logits, masks, thing_ids={0, 1}, object_mask_threshold=1.0, overlap_threshold=0.5)
    assert empty.segments_info == [] and (empty.id_map == 0).all()


def test_panoptic_overlap_threshold_drops_occluded_segment() -> None:
    # q0 covers the left half; q1 (less confident) covers the left 3 columns + 1 column of its own.
    masks = torch.stack([_region(slice(None), slice(0, 4)), _region(slice(None), slice(1, 5))])
    logits = torch.cat([_logits(0), _logits(1, confidence=3.0)])
    strict = panoptic_inference(logits, masks, thing_ids={0, 1}, object_mask_threshold=0.4, overlap_threshold=0.5)
    assert [s["category_id"] for s in strict.segments_info] == [0]  # q1 keeps 1/4 of its mask
    loose = panoptic_inference(logits, masks, thing_ids={0, 1}, object_mask_threshold=0.4, overlap_threshold=0.2)
    assert [s["category_id"] for s in loose.segments_info] == [0, 1]
    assert (loose.id_map[:, 4] == 2).all()


def test_instance_inference_topk_scores_and_thing_filter() -> None:
    masks = torch.stack([_region(slice(0, 4), slice(0, 4)), _region(slice(4, 8), slice(4, 8))])
    logits = torch.tensor([[3.0, 1.0, 0.0, 0.0, -5.0], [0.0, 0.0, 4.0, 0.0, -5.0]])
    result = instance_inference(logits, masks, topk=3)
    probs = logits.softmax(-1)[:, :-1]
    expected = sorted(probs.flatten().tolist(), reverse=True)[:3]
    assert sorted(result.scores.tolist(), reverse=True) == pytest.approx(expected, abs=1e-6)  # mask score ~1
    assert result.masks.dtype == torch.bool and result.masks.shape == (3, 8, 8)
    for label, mask in zip(result.labels.tolist(), result.masks):
        query = 0 if label in (0, 1) and mask[0, 0] else 1
        assert mask.sum() == 16 and bool(mask[0, 0]) == (query == 0)
    things = instance_inference(logits, masks, topk=8, thing_ids={2})  # all 8 pairs, then things only
    assert things.labels.tolist() == [2, 2]
    assert sorted(things.scores.tolist()) == pytest.approx(sorted(probs[:, 2].tolist()), abs=1e-6)


def test_resize_mask_logits_crops_padding_then_resizes() -> None:
    logits = torch.zeros(1, 4, 4)
    logits[0, :, 2:] = 10.0  # the padded right half of a 16x16 input
    out = resize_mask_logits(logits, input_size=(16, 16), image_size=(16, 8), output_size=(32, 16))
    assert out.shape == (1, 32, 16)
    assert (out[0, :, :12] < 1).all()  # the padding region is gone


@pytest.mark.parametrize("mode,key", [("semantic", None), ("panoptic", "panoptic_seg"), ("instance", "instances")])
def test_postprocessor_modes(mode: str, key: str | None) -> None:
    outputs = {"pred_logits": torch.randn(2, 5, 4), "pred_masks": torch.randn(2, 5, 8, 8)}
    results = Postprocessor(mode=mode, thing_ids={0})(
        outputs, input_size=(32, 32), image_sizes=[(32, 24), (30, 32)], output_sizes=[(64, 48), (15, 16)]
    )
    assert [r["sem_seg"].shape for r in results] == [(3, 64, 48), (3, 15, 16)]
    assert all((key in r) == (key is not None) for r in results)
    if key == "panoptic_seg":
        assert results[0]["panoptic_seg"].id_map.shape == (64, 48)
    if key == "instances":
        assert results[1]["instances"].masks.shape[1:] == (15, 16)
    with pytest.raises(ValueError, match="mode"):
        Postprocessor(mode="depth")
