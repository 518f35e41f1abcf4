"""PQ against a direct, independently written evaluation of the textbook definition (Kirillov et al. 2019):
segments as pixel sets, void removed from predictions, crowd regions removed from same-class predictions,
matches at IoU > 0.5."""

from __future__ import annotations

import numpy as np
import pytest

from mask2former.evaluation import PanopticEvaluator

CATEGORIES = {0: True, 1: True, 2: False, 3: False}  # train id → isthing


# ---------------------------------------------------------------------------------- textbook reference
def textbook_pq(images, categories):
    """images: list of (gt, pred); gt = list of (bool mask, category, iscrowd), pred = list of (mask, category).
    Void = pixels not covered by any ground-truth segment."""
    tally = {c: {"tp": 0, "fp": 0, "fn": 0, "iou": 0.0} for c in categories}
    for gt, pred in images:
        covered = np.zeros_like(gt[0][0]) if gt else np.zeros_like(pred[0][0])
        for mask, _, _ in gt:
            covered = covered | mask
        void = ~covered
        matched_gt, matched_pred = set(), set()
        for pi, (p_mask, p_cat) in enumerate(pred):
            if not p_mask.any():
                continue
            p_kept = p_mask & ~void  # void pixels are removed from the prediction
            for gi, (g_mask, g_cat, crowd) in enumerate(gt):
                if crowd or g_cat != p_cat:
                    continue
                inter = np.logical_and(p_kept, g_mask).sum()
                union = np.logical_or(p_kept, g_mask).sum()
                if union and inter / union > 0.5:
                    tally[p_cat]["tp"] += 1
                    tally[p_cat]["iou"] += inter / union
                    matched_gt.add(gi)
                    matched_pred.add(pi)
        for gi, (g_mask, g_cat, crowd) in enumerate(gt):
            if not crowd and gi not in matched_gt and g_mask.any():
                tally[g_cat]["fn"] += 1
        for pi, (p_mask, p_cat) in enumerate(pred):
            if pi in matched_pred or not p_mask.any():
                continue
            crowd_region = np.zeros_like(p_mask)
            for g_mask, g_cat, crowd in gt:
                if crowd and g_cat == p_cat:
                    crowd_region = crowd_region | g_mask
            if np.logical_and(p_mask, void | crowd_region).sum() / p_mask.sum() > 0.5:
                continue  # mostly void / same-class crowd: not a false positive
            tally[p_cat]["fp"] += 1
    rows = {}
    for c, t in tally.items():
        n = t["tp"] + 0.5 * t["fp"] + 0.5 * t["fn"]
        if n:
            rows[c] = (t["iou"] / n, t["iou"] / t["tp"] if t["tp"] else 0.0, t["tp"] / n)

    def mean(cs):
        picked = [rows[c] for c in cs if c in rows]
        return tuple(float(np.mean([r[i] for r in picked])) if picked else 0.0 for i in range(3))

    return {"all": mean(categories), "things": mean([c for c, t in categories.items() if t]),
            "stuff": mean([c for c, t in categories.items() if not t]), "per_class": rows}


def to_id_maps(gt, pred, shape):
    """Pixel-set segments → (id map, segments list) pairs as the evaluator takes them."""
    gt_map, pred_map = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    gt_segments, pred_segments = [], []
    for i, (mask, cat, crowd) in enumerate(gt, start=1):
        gt_map[mask] = 10 * i + 7  # arbitrary non-contiguous ids
        gt_segments.append({"id": 10 * i + 7, "category_id": cat, "iscrowd": crowd})
    for i, (mask, cat) in enumerate(pred, start=1):
        pred_map[mask] = 300 + i
        pred_segments.append({"id": 300 + i, "category_id": cat})
    return pred_map, pred_segments, gt_map, gt_segments


def evaluate(images, shape):
    evaluator = PanopticEvaluator(CATEGORIES)
    for gt, pred in images:
        evaluator.update(*to_id_maps(gt, pred, shape))
    return evaluator.compute()


def assert_matches_textbook(images, shape):
    ours, ref = evaluate(images, shape), textbook_pq(images, CATEGORIES)
    assert (ours.PQ, ours.SQ, ours.RQ) == pytest.approx(ref["all"], abs=1e-12)
    assert (ours.PQ_th, ours.SQ_th, ours.RQ_th) == pytest.approx(ref["things"], abs=1e-12)
    assert (ours.PQ_st, ours.SQ_st, ours.RQ_st) == pytest.approx(ref["stuff"], abs=1e-12)
    assert set(ours.per_class) == set(ref["per_class"])
    for c, row in ours.per_class.items():
        assert (row["PQ"], row["SQ"], row["RQ"]) == pytest.approx(ref["per_class"][c], abs=1e-12)
    return ours


def box(shape, top, left, bottom, right):
    mask = np.zeros(shape, bool)
    mask[top:bottom, left:right] = True
    return mask


# ------------------------------------------------------------------------------------- constructed cases
S = (8, 8)


def test_hand_computed_case():
    gt = [(box(S, 0, 0, 4, 8), 2, False), (box(S, 4, 0, 8, 4), 0, False), (box(S, 4, 4, 8, 8), 0, False)]
    pred = [(box(S, 0, 0, 4, 8), 2), (box(S, 4, 0, 8, 4), 0), (box(S, 4, 5, 8, 8), 0)]  # last: IoU 12/16
    ours = assert_matches_textbook([(gt, pred)], S)
    assert ours.per_class[0]["PQ"] == pytest.approx(0.875) and ours.per_class[0]["RQ"] == 1.0
    assert ours.PQ == pytest.approx((0.875 + 1.0) / 2)
    assert ours.PQ_th == pytest.approx(0.875) and ours.PQ_st == pytest.approx(1.0)


def test_iou_of_exactly_half_is_not_a_match():
    gt = [(box(S, 0, 0, 8, 4), 0, False)]
    pred = [(box(S, 0, 0, 8, 2), 0)]  # IoU 16/32 = 0.5 → FP + FN
    ours = assert_matches_textbook([(gt, pred)], S)
    assert ours.per_class[0] == {"PQ": 0.0, "SQ": 0.0, "RQ": 0.0, "TP": 0.0, "FP": 1.0, "FN": 1.0}


def test_void_pixels_are_removed_from_predictions():
    gt = [(box(S, 0, 0, 4, 4), 0, False)]  # everything else is void
    grown = box(S, 0, 0, 4, 8)  # half of it on void: IoU counts only the non-void part → 1.0
    on_void = box(S, 5, 0, 8, 8)  # entirely on void: ignored, not a false positive
    ours = assert_matches_textbook([(gt, [(grown, 0), (on_void, 1)])], S)
    assert ours.per_class == {0: {"PQ": 1.0, "SQ": 1.0, "RQ": 1.0, "TP": 1.0, "FP": 0.0, "FN": 0.0}}


def test_crowd_regions():
    gt = [(box(S, 0, 0, 8, 8) & ~box(S, 0, 0, 4, 8), 1, True),  # a crowd of class 1 in the lower half
          (box(S, 0, 0, 4, 8), 3, False)]
    pred = [(box(S, 4, 0, 8, 6), 1),  # on the crowd, same class: ignored
            (box(S, 5, 0, 8, 8), 0),  # on the crowd, other class: false positive
            (box(S, 0, 0, 4, 8), 3)]
    ours = assert_matches_textbook([(gt, pred)], S)
    assert 1 not in ours.per_class  # crowd: no FN, and the same-class prediction is not an FP
    assert ours.per_class[0]["FP"] == 1.0 and ours.per_class[3]["TP"] == 1.0


def test_prediction_ids_without_segments_and_unknown_categories():
    gt = [(box(S, 0, 0, 8, 8), 2, False)]
    pred_map, pred_segments, gt_map, gt_segments = to_id_maps(gt, [(box(S, 0, 0, 8, 8), 2)], S)
    pred_map[0, 0] = 999  # an id not listed → unassigned
    evaluator = PanopticEvaluator(CATEGORIES)
    evaluator.update(pred_map, pred_segments, gt_map, gt_segments)
    assert evaluator.compute().per_class[2]["SQ"] == pytest.approx(63 / 64)
    with pytest.raises(ValueError, match=r"ground-truth category 9 is not one of the evaluator's categories"):
        evaluator.update(pred_map, pred_segments, gt_map, [{**gt_segments[0], "category_id": 9}])
    unknown = PanopticEvaluator(CATEGORIES)  # a predicted class outside the label map: pixels unassigned
    unknown.update(pred_map, [{"id": 301, "category_id": 9}], gt_map, gt_segments)
    assert unknown.compute().per_class == {2: {"PQ": 0.0, "SQ": 0.0, "RQ": 0.0, "TP": 0.0, "FP": 0.0, "FN": 1.0}}
    with pytest.raises(ValueError, match=r"prediction shape \(8, 7\) != ground truth shape \(8, 8\)"):
        evaluator.update(pred_map[:, :7], pred_segments, gt_map, gt_segments)


def test_random_scenes_match_the_textbook_definition():
    rng = np.random.default_rng(0)
    shape = (24, 24)
    images = []
    for _ in range(40):
        gt, pred = [], []
        taken = np.zeros(shape, bool)
        for _ in range(rng.integers(1, 6)):
            top, left = rng.integers(0, 18, size=2)
            mask = box(shape, top, left, top + rng.integers(3, 10), left + rng.integers(3, 10)) & ~taken
            if not mask.any():
                continue
            taken |= mask
            gt.append((mask, int(rng.integers(0, 4)), bool(rng.random() < 0.2)))
        if not gt:
            continue
        pred_taken = np.zeros(shape, bool)
        for mask, cat, _ in gt:
            if rng.random() < 0.2:
                continue  # missed
            shifted = np.roll(mask, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(0, 1)) & ~pred_taken
            if shifted.any():
                pred_taken |= shifted
                pred.append((shifted, cat if rng.random() < 0.8 else int(rng.integers(0, 4))))
        for _ in range(rng.integers(0, 3)):  # spurious segments, often over void
            top, left = rng.integers(0, 20, size=2)
            mask = box(shape, top, left, top + 4, left + 4) & ~pred_taken
            if mask.any():
                pred_taken |= mask
                pred.append((mask, int(rng.integers(0, 4))))
        images.append((gt, pred))
    ours = assert_matches_textbook(images, shape)
    assert 0.0 < ours.PQ < 1.0
    per_image = PanopticEvaluator(CATEGORIES)
    halves = [PanopticEvaluator(CATEGORIES), PanopticEvaluator(CATEGORIES)]
    for i, (gt, pred) in enumerate(images):
        halves[i % 2].update(*to_id_maps(gt, pred, shape))
    per_image.merge(halves[0])
    per_image.merge(halves[1])
    assert per_image.compute().PQ == pytest.approx(ours.PQ)


def test_counts_as_panopticapi_does_listed_but_absent_segments_and_one_crowd_per_category():
    """Three panopticapi conventions: a listed ground-truth segment without pixels is still a false negative;
    only the LAST listed crowd segment of a category excuses that category's predictions; ground-truth pixels
    with an unlisted id are neither a segment nor void."""
    evaluator = PanopticEvaluator({0: True, 1: False})
    gt = np.zeros((4, 8), dtype=np.int64)
    gt[:, 0:2] = 11            # crowd of class 0, listed FIRST (panopticapi forgets it)
    gt[:, 2:4] = 12            # crowd of class 0, listed last (the one that counts)
    gt[:, 4:6] = 99            # unlisted id: not void
    gt[:, 6:8] = 13            # stuff segment, matched exactly
    pred = np.zeros((4, 8), dtype=np.int64)
    pred[:, 0:2] = 1           # class 0 on the forgotten crowd: a false positive
    pred[:, 2:4] = 2           # class 0 on the remembered crowd: ignored
    pred[:, 4:6] = 3           # class 0 on unlisted pixels: a false positive (they are not void)
    pred[:, 6:8] = 4
    evaluator.update(pred, [{"id": 1, "category_id": 0}, {"id": 2, "category_id": 0}, {"id": 3, "category_id": 0},
                            {"id": 4, "category_id": 1}],
                     gt, [{"id": 11, "category_id": 0, "iscrowd": 1}, {"id": 12, "category_id": 0, "iscrowd": 1},
                          {"id": 13, "category_id": 1, "iscrowd": 0},
                          {"id": 14, "category_id": 1, "iscrowd": 0}])  # listed, no pixels: a false negative
    tp, fp, fn, iou = (evaluator.stats[i].tolist() for i in range(4))
    assert (tp, fp, fn) == ([0.0, 1.0], [2.0, 0.0], [0.0, 1.0]) and iou == [0.0, 1.0]
    assert evaluator.compute().PQ == pytest.approx((0.0 + 1.0 / (1 + 0.5)) / 2)
