"""One comparable objective: every metric is computed at each image's original resolution.

- The same checkpoint evaluated with test sizes 32, 64 and 128 on 64-px data is scored against the SAME
  ground truth (the one on disk, never resized): the test records what the evaluators receive.
- `mask2former evaluate` PQ equals an independently written textbook PQ (panopticapi's counting) over the
  ground-truth files read straight from disk, on hand-made files whose sizes are not multiples of 32.
- Evaluation is deterministic for a checkpoint and data, `val_loss` included.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask2former.actions.evaluate import run_evaluation
from mask2former.data.io import id_to_rgb
from mask2former.evaluation.panoptic import PanopticEvaluator
from mask2former.evaluation.semantic import SemanticEvaluator
from tests.training.training_support import make_config


def _checkpoint(trained_run: Path) -> Path:
    return sorted(trained_run.glob("model_epoch_*.pth"))[-1]


class Recorder:
    """Wraps the evaluators' `update` to keep what they were given (ground truth and predictions)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.semantic: list[tuple[np.ndarray, np.ndarray]] = []
        self.panoptic: list[tuple[np.ndarray, list, np.ndarray, list]] = []
        semantic_update, panoptic_update = SemanticEvaluator.update, PanopticEvaluator.update

        def record_semantic(evaluator, pred, target):  # noqa: ANN001
            self.semantic.append((np.asarray(pred).copy(), np.asarray(target).copy()))
            return semantic_update(evaluator, pred, target)

        def record_panoptic(evaluator, pred_id_map, pred_segments, gt_id_map, gt_segments):  # noqa: ANN001
            self.panoptic_evaluator = evaluator
            self.panoptic.append((np.asarray(pred_id_map).copy(), [dict(s) for s in pred_segments],
                                  np.asarray(gt_id_map).copy(), [dict(s) for s in gt_segments]))
            return panoptic_update(evaluator, pred_id_map, pred_segments, gt_id_map, gt_segments)

        monkeypatch.setattr(SemanticEvaluator, "update", record_semantic)
        monkeypatch.setattr(PanopticEvaluator, "update", record_panoptic)

    def reset(self) -> None:
        self.semantic.clear()
        self.panoptic.clear()


def _evaluate(data: Path, results: Path, checkpoint: Path, **extra) -> dict:
    cfg, spec = make_config(data, results, action="evaluate", **{"evaluate.checkpoint": str(checkpoint)}, **extra)
    return run_evaluation(cfg, spec)


def test_every_test_size_is_scored_against_the_same_original_ground_truth(panoptic_data, trained_run, tmp_path,
                                                                          monkeypatch):
    recorder = Recorder(monkeypatch)
    checkpoint = _checkpoint(trained_run)
    truths, scores = {}, {}
    for size in (32, 64, 128):
        recorder.reset()
        report = _evaluate(panoptic_data, tmp_path / f"size{size}", checkpoint,
                           **{"dataset.augmentation.test_min_size": size, "dataset.augmentation.test_max_size": size})
        scores[size] = report["metrics"]
        truths[size] = ([t.tobytes() for _, t in recorder.semantic],
                        [(g.tobytes(), json.dumps(s, sort_keys=True)) for _, _, g, s in recorder.panoptic])
        # predictions come back at the original 64 x 64, whatever size the model saw
        assert {p.shape for p, _ in recorder.semantic} == {(64, 64)}
        assert {p.shape for p, _, _, _ in recorder.panoptic} == {(64, 64)}
    assert truths[32] == truths[64] == truths[128]
    assert len(truths[64][0]) == 2 and len(truths[64][1]) == 2  # both val images were scored

    # ... and that ground truth is the file on disk, untouched
    annotations = json.loads((panoptic_data / "val" / "annotations_panoptic.json").read_text())
    from mask2former.data.archive import resolve_folder
    from mask2former.data.io import read_panoptic_png

    panoptic_dir = resolve_folder(panoptic_data / "val" / "images_panoptic.tar.gz")
    on_disk = sorted(read_panoptic_png(panoptic_dir / a["file_name"], record="test").tobytes()
                     for a in annotations["annotations"])
    assert sorted(g for g, _ in truths[64][1]) == on_disk
    for size, metrics in scores.items():
        assert 0.0 <= metrics["PQ"] <= 1.0 and 0.0 <= metrics["mIoU"] <= 1.0, (size, metrics)


def test_evaluation_is_deterministic_val_loss_included(panoptic_data, trained_run, tmp_path):
    checkpoint = _checkpoint(trained_run)
    first = _evaluate(panoptic_data, tmp_path / "a", checkpoint)["metrics"]
    second = _evaluate(panoptic_data, tmp_path / "b", checkpoint)["metrics"]
    assert first == second
    assert first["val_loss"] is not None and first["val_loss"] > 0


# -------------------------------------------------------------------------------------- hand-made files
def _hand_made_panoptic(root: Path) -> Path:
    """Three images whose sizes are not multiples of 32, with things, stuff, a crowd region and void."""
    (root / "images").mkdir(parents=True)
    (root / "panoptic").mkdir()
    layouts = [
        ((48, 80), [(1001, 1, 0, (4, 30, 6, 40)), (2001, 2, 0, (20, 46, 44, 78)), (5001, 5, 0, (30, 48, 0, 44)),
                    (1002, 1, 1, (0, 4, 60, 80))]),
        ((70, 50), [(6001, 6, 0, (0, 35, 0, 50)), (3001, 3, 0, (40, 66, 8, 30)), (7001, 7, 0, (35, 70, 30, 50))]),
        ((57, 61), [(1001, 1, 0, (10, 40, 10, 40)), (5001, 5, 0, (40, 57, 0, 61)), (2001, 2, 1, (0, 10, 0, 30))]),
    ]
    palette = {1: (220, 40, 40), 2: (40, 200, 40), 3: (40, 40, 220), 5: (200, 200, 60), 6: (60, 200, 200),
               7: (200, 60, 200)}
    images, annotations = [], []
    for image_id, ((h, w), segments) in enumerate(layouts, start=1):
        ids = np.zeros((h, w), dtype=np.int64)
        picture = np.full((h, w, 3), 127, dtype=np.uint8)
        info = []
        for seg_id, category, _crowd, (top, bottom, left, right) in segments:
            ids[top:bottom, left:right] = seg_id
            picture[top:bottom, left:right] = palette[category]
        for seg_id, category, crowd, _ in segments:
            area = int((ids == seg_id).sum())
            info.append({"id": seg_id, "category_id": category, "iscrowd": crowd, "area": area, "bbox": [0, 0, 1, 1]})
        name = f"hand_{image_id}"
        Image.fromarray(picture).save(root / "images" / f"{name}.png")
        Image.fromarray(id_to_rgb(ids)).save(root / "panoptic" / f"{name}.png")
        images.append({"id": image_id, "file_name": f"{name}.png", "height": h, "width": w})
        annotations.append({"image_id": image_id, "file_name": f"{name}.png", "segments_info": info})
    return root, {"images": images, "annotations": annotations}


def _textbook_pq(pairs, categories: dict[int, bool]) -> dict[str, float]:
    """PQ from (gt ids, gt segments, pred ids, pred segments) per image, written from the definition with
    panopticapi's conventions: void = gt id 0; crowd never matched nor missed; an unmatched prediction lying
    more than half on void + its category's crowd is ignored."""
    tally = {c: [0.0, 0, 0, 0] for c in categories}  # iou sum, tp, fp, fn
    for gt_ids, gt_segments, pred_ids, pred_segments in pairs:
        matched_gt, matched_pred = set(), set()
        for p in pred_segments:
            p_mask = pred_ids == p["id"]
            for g in gt_segments:
                if g["iscrowd"] or g["category_id"] != p["category_id"]:
                    continue
                g_mask = gt_ids == g["id"]
                inter = (p_mask & g_mask).sum()
                union = (p_mask & (gt_ids != 0)).sum() + g_mask.sum() - inter
                if union and inter / union > 0.5:
                    tally[g["category_id"]][0] += inter / union
                    tally[g["category_id"]][1] += 1
                    matched_gt.add(g["id"])
                    matched_pred.add(p["id"])
        for g in gt_segments:
            if not g["iscrowd"] and g["id"] not in matched_gt:
                tally[g["category_id"]][3] += 1
        for p in pred_segments:
            p_mask = pred_ids == p["id"]
            if p["id"] in matched_pred or not p_mask.any():
                continue
            crowd = np.zeros_like(p_mask)
            for g in gt_segments:
                if g["iscrowd"] and g["category_id"] == p["category_id"]:
                    crowd |= gt_ids == g["id"]
            if (p_mask & ((gt_ids == 0) | crowd)).sum() / p_mask.sum() > 0.5:
                continue
            tally[p["category_id"]][2] += 1
    rows = [(iou / (tp + fp / 2 + fn / 2)) for iou, tp, fp, fn in tally.values() if tp + fp + fn]
    return {"PQ": float(np.mean(rows)) if rows else 0.0, "tally": tally}


def test_evaluate_pq_equals_textbook_pq_at_original_size_on_hand_made_files(panoptic_data, trained_run, tmp_path,
                                                                            monkeypatch):
    root, annotations = _hand_made_panoptic(tmp_path / "hand")
    (root / "annotations_panoptic.json").write_text(json.dumps({
        **annotations, "categories": json.loads((panoptic_data / "val" / "label_map_panoptic.json").read_text())}))
    recorder = Recorder(monkeypatch)
    # A briefly trained tiny model keeps few queries; so that the comparison is not 0 == 0, every query keeps
    # the pixels where it is the strongest (at the original size, as the evaluator receives them), labelled
    # with its best real class. The scoring under test is untouched.
    import torch

    from mask2former.model import postprocessing

    def every_query(mask_cls, mask_pred, *, thing_ids, object_mask_threshold, overlap_threshold):  # noqa: ANN001
        owner = mask_pred.argmax(0)
        labels = mask_cls[:, :-1].argmax(-1)
        id_map = torch.zeros(mask_pred.shape[-2:], dtype=torch.int32)
        segments = []
        for query in owner.unique().tolist():
            id_map[owner == query] = len(segments) + 1
            segments.append({"id": len(segments) + 1, "category_id": int(labels[query]),
                             "isthing": int(labels[query]) in thing_ids, "score": 1.0})
        return postprocessing.PanopticPrediction(id_map, segments)

    monkeypatch.setattr(postprocessing, "panoptic_inference", every_query)
    fields = {"dataset.test.panoptic_json": str(root / "annotations_panoptic.json"),
              "dataset.test.img_dir": str(root / "images"), "dataset.test.panoptic_dir": str(root / "panoptic"),
              "dataset.test.batch_size": 2}
    report = _evaluate(panoptic_data, tmp_path / "eval", _checkpoint(trained_run), **fields)
    assert report["split"] == "test" and report["num_images"] == 3

    # Ground truth straight from the files on disk (contiguous_id false: train id = raw id).
    from mask2former.data.io import read_panoptic_png

    by_name = {a["file_name"]: a for a in annotations["annotations"]}
    pairs = []
    assert len(recorder.panoptic) == 3
    assert sum(len(segments) for _, segments, _, _ in recorder.panoptic) > 0, "the model must predict segments"
    for pred_ids, pred_segments, gt_ids, _ in recorder.panoptic:
        matches = [a for a in by_name.values()
                   if np.array_equal(read_panoptic_png(root / "panoptic" / a["file_name"], record="t"), gt_ids)]
        assert len(matches) == 1, "the evaluator's ground truth must be a file on disk, at its own size"
        annotation = matches[0]
        assert pred_ids.shape == gt_ids.shape  # predictions resized back to the original size
        pairs.append((gt_ids, annotation["segments_info"], pred_ids, pred_segments))
    categories = {c["id"]: bool(c["isthing"]) for c in json.loads((root / "annotations_panoptic.json").read_text())["categories"]}
    expected = _textbook_pq(pairs, categories)
    assert report["metrics"]["PQ"] == pytest.approx(expected["PQ"], abs=1e-12)
    # ... and so do the counts behind it, category by category (train id = raw id here)
    evaluator = recorder.panoptic_evaluator
    counted = {cat: [float(evaluator.stats[row, col]) for row in (3, 0, 1, 2)]
               for col, cat in enumerate(evaluator.category_ids)}
    for cat, (iou, tp, fp, fn) in expected["tally"].items():
        assert counted[cat][1:] == [tp, fp, fn] and counted[cat][0] == pytest.approx(iou), cat
    assert sum(fp + fn for _, _, fp, fn in expected["tally"].values()) > 0
    assert {p.shape for p, _, _, _ in recorder.panoptic} == {(48, 80), (70, 50), (57, 61)}


def _shifted_truth_predictions(monkeypatch: pytest.MonkeyPatch, truths: dict[tuple[int, int], tuple[np.ndarray, list]],
                               categories: list[int]) -> None:
    """Replace panoptic post-processing by a prediction made from the image's own ground truth, shifted
    sideways (a few px per image) and with every third segment given a wrong class, so that panopticapi's
    cases all occur: true positives at several IoUs, misses, wrong classes, predictions lying on crowd and
    void. The image is told by its original size (distinct per hand-made file), which is the size the
    post-processing works at. The scoring under test is untouched."""
    import torch

    from mask2former.model import postprocessing

    def from_truth(mask_cls, mask_pred, *, thing_ids, object_mask_threshold, overlap_threshold):  # noqa: ANN001
        gt_ids, gt_segments = truths[tuple(mask_pred.shape[-2:])]
        shift = 3 + gt_ids.shape[1] % 7
        shifted = np.zeros_like(gt_ids)
        shifted[:, shift:] = gt_ids[:, :-shift]  # columns shifted right; the first `shift` columns become void
        id_map = np.zeros(gt_ids.shape, dtype=np.int32)
        segments = []
        for index, segment in enumerate(gt_segments):
            mask = shifted == segment["id"]
            if not mask.any():
                continue
            category = segment["category_id"]
            if index % 3 == 2:  # a wrong class: a false positive and a miss
                category = categories[(categories.index(category) + 1) % len(categories)]
            id_map[mask] = len(segments) + 1
            segments.append({"id": len(segments) + 1, "category_id": category, "isthing": category in thing_ids,
                             "score": 1.0})
        return postprocessing.PanopticPrediction(torch.from_numpy(id_map), segments)

    monkeypatch.setattr(postprocessing, "panoptic_inference", from_truth)


def test_evaluate_pq_equals_panopticapi_pq_compute_on_the_same_predictions(panoptic_data, trained_run, tmp_path,
                                                                           monkeypatch):
    """COCO-official PQ: panopticapi's own `pq_compute`, given the predictions the evaluator scored (written as
    COCO panoptic PNGs + JSON at the original size) and the hand-made ground-truth files as they are on disk,
    returns the PQ, SQ, RQ and things/stuff PQ that `mask2former evaluate` reports (the model ran at test size
    32, its masks resized back to each file's own size)."""
    from contextlib import redirect_stdout
    from io import StringIO

    from panopticapi.evaluation import pq_compute

    from mask2former.data.io import read_panoptic_png

    root, annotations = _hand_made_panoptic(tmp_path / "hand")
    label_map = json.loads((panoptic_data / "val" / "label_map_panoptic.json").read_text())
    gt_json = root / "annotations_panoptic.json"
    gt_json.write_text(json.dumps({**annotations, "categories": label_map}))
    truths = {}
    for annotation in annotations["annotations"]:
        gt_ids = read_panoptic_png(root / "panoptic" / annotation["file_name"], record="t")
        truths[gt_ids.shape] = (gt_ids, annotation["segments_info"])
    assert len(truths) == 3  # the sizes tell the files apart
    recorder = Recorder(monkeypatch)
    _shifted_truth_predictions(monkeypatch, truths, [c["id"] for c in label_map])
    fields = {"dataset.test.panoptic_json": str(gt_json), "dataset.test.img_dir": str(root / "images"),
              "dataset.test.panoptic_dir": str(root / "panoptic"), "dataset.test.batch_size": 2,
              "dataset.augmentation.test_min_size": 32, "dataset.augmentation.test_max_size": 64}
    report = _evaluate(panoptic_data, tmp_path / "eval", _checkpoint(trained_run), **fields)
    assert report["split"] == "test" and len(recorder.panoptic) == 3

    predictions = tmp_path / "pred"
    predictions.mkdir()
    written = []
    for pred_ids, pred_segments, gt_ids, _ in recorder.panoptic:
        annotation = next(a for a in annotations["annotations"]
                          if np.array_equal(read_panoptic_png(root / "panoptic" / a["file_name"], record="t"), gt_ids))
        Image.fromarray(id_to_rgb(pred_ids)).save(predictions / annotation["file_name"])
        written.append({"image_id": annotation["image_id"], "file_name": annotation["file_name"],
                        "segments_info": [{"id": s["id"], "category_id": s["category_id"]} for s in pred_segments]})
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": written}))
    with redirect_stdout(StringIO()):
        official = pq_compute(str(gt_json), str(tmp_path / "pred.json"), gt_folder=str(root / "panoptic"),
                              pred_folder=str(predictions))

    metrics = report["metrics"]
    assert 0 < official["All"]["pq"] < 1, "a comparison at 0 or 1 would prove little"
    assert official["Things"]["n"] > 0 and official["Stuff"]["n"] > 0
    for ours, (group, key) in {"PQ": ("All", "pq"), "SQ": ("All", "sq"), "RQ": ("All", "rq"),
                               "PQ_th": ("Things", "pq"), "PQ_st": ("Stuff", "pq")}.items():
        assert metrics[ours] == pytest.approx(official[group][key], abs=1e-12), (ours, metrics, official)


def test_instance_mode_is_scored_against_the_same_original_ground_truth_at_every_test_size(
        panoptic_data, trained_run, tmp_path, monkeypatch):
    """Mask AP too: at test sizes 32 and 128 on 64-px data, COCOeval receives the same ground-truth instances,
    at the original 64 x 64, and detections resized back to it."""
    from mask2former.evaluation.instance import InstanceEvaluator

    received: list[tuple[bytes, bytes, bytes, tuple]] = []
    update = InstanceEvaluator.update

    def record(evaluator, *, gt_masks, gt_labels, pred_masks, pred_scores, pred_labels, gt_iscrowd=None):  # noqa: ANN001
        received.append((np.asarray(gt_masks).tobytes(), np.asarray(gt_labels).tobytes(),
                         np.asarray(gt_iscrowd).tobytes(), (tuple(gt_masks.shape[1:]), tuple(pred_masks.shape[1:]))))
        return update(evaluator, gt_masks=gt_masks, gt_labels=gt_labels, pred_masks=pred_masks,
                      pred_scores=pred_scores, pred_labels=pred_labels, gt_iscrowd=gt_iscrowd)

    monkeypatch.setattr(InstanceEvaluator, "update", record)
    truths = {}
    for size in (32, 128):
        received.clear()
        report = _evaluate(panoptic_data, tmp_path / f"size{size}", _checkpoint(trained_run), **{
            "model.mode": "instance", "model.test_topk_per_image": 20,
            "dataset.augmentation.test_min_size": size, "dataset.augmentation.test_max_size": size})
        assert "AP" in report["metrics"] and len(received) == 2
        assert {shapes for *_, shapes in received} == {((64, 64), (64, 64))}
        truths[size] = [entry[:3] for entry in received]
    assert truths[32] == truths[128]
    assert all(labels for _, labels, _ in truths[32])  # every val image has thing instances
