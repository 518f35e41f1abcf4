"""Inference JSON is COCO-format as written: panopticapi's `pq_compute` and pycocotools' `COCOeval` score it
against the dataset's own annotation files without any conversion."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from mask2former.cli import main
from tests.training.training_support import write_spec_file

ID_OFFSET = 4200  # ids no sequential numbering would produce: a prediction must carry the annotation's id


def _renumbered_val(panoptic_data: Path, target: Path) -> Path:
    """A copy of the val split whose COCO image ids are 4201, 4202, ... in both annotation files."""
    shutil.copytree(panoptic_data / "val", target)
    for name in ("annotations_panoptic.json", "annotations.json"):
        path = target / name
        data = json.loads(path.read_text())
        for image in data["images"]:
            image["id"] += ID_OFFSET
        for annotation in data["annotations"]:
            annotation["image_id"] += ID_OFFSET
        path.write_text(json.dumps(data))
    with tarfile.open(target / "images_panoptic.tar.gz") as archive:
        archive.extractall(target / "panoptic_gt", filter="data")
    return target


def test_inference_json_is_scored_as_written_by_panopticapi_and_pycocotools(panoptic_data, trained_run, tmp_path,
                                                                           capsys) -> None:
    from panopticapi.evaluation import pq_compute
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    val = _renumbered_val(panoptic_data, tmp_path / "val")
    checkpoint = trained_run / "mask2former_model_latest.pth"
    # As `hpo spec resolve --action inference --eval-dataset val` fills it: test images = the val images.
    spec = write_spec_file(tmp_path / "spec.yaml", panoptic_data, tmp_path / "out", **{
        "dataset.val.img_dir": str(val / "images.tar.gz"),
        "dataset.val.panoptic_json": str(val / "annotations_panoptic.json"),
        "dataset.val.instance_json": str(val / "annotations.json"),
        "dataset.test.img_dir": str(val / "images.tar.gz"), "dataset.test.panoptic_json": "",
    })
    assert main(["inference", "-e", str(spec), f"inference.checkpoint={checkpoint}",
                 "model.object_mask_threshold=0.0"]) == 0
    out = tmp_path / "out"
    predicted = json.loads((out / "panoptic.json").read_text())
    gt = json.loads((val / "annotations_panoptic.json").read_text())
    assert sorted(a["image_id"] for a in predicted["annotations"]) == sorted(i["id"] for i in gt["images"])
    assert {i["file_name"] for i in predicted["images"]} == {i["file_name"] for i in gt["images"]}

    with contextlib.redirect_stdout(io.StringIO()):
        scores = pq_compute(str(val / "annotations_panoptic.json"), str(out / "panoptic.json"),
                            gt_folder=str(val / "panoptic_gt" / "panoptic"), pred_folder=str(out / "panoptic"))
    assert {"All", "Things", "Stuff"} <= set(scores) and 0.0 <= scores["All"]["pq"] <= 1.0
    assert scores["All"]["n"] > 0  # categories were scored, i.e. predictions met ground truth by image_id

    assert main(["inference", "-e", str(spec), f"inference.checkpoint={checkpoint}", "model.mode=instance",
                 "model.test_topk_per_image=40", f"results_dir={tmp_path / 'inst'}"]) == 0
    capsys.readouterr()
    results = json.loads((tmp_path / "inst" / "instances.json").read_text())
    assert results and {r["image_id"] for r in results} <= {i["id"] for i in gt["images"]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(val / "annotations.json"))
        detections = coco.loadRes(str(tmp_path / "inst" / "instances.json"))
        evaluator = COCOeval(coco, detections, iouType="segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert len(evaluator.evalImgs) > 0 and -1.0 <= evaluator.stats[0] <= 1.0
    matched = {e["image_id"] for e in evaluator.evalImgs if e is not None and e["dtIds"]}
    assert matched == {i["id"] for i in gt["images"]}  # every image's detections met its ground truth


def test_annotations_name_the_ids_of_matching_files_and_new_images_get_fresh_ids(tmp_path: Path) -> None:
    from mask2former.actions.image_ids import assign_image_ids
    from skillkit.errors import DataError

    annotations = tmp_path / "a.json"
    annotations.write_text(json.dumps({"images": [{"id": 17, "file_name": "x/a.jpg"}, {"id": 3, "file_name": "b.jpg"}]}))
    assert assign_image_ids(["x/a.jpg", "sub/b.jpg", "new.jpg", "z.jpg"], [str(annotations)]) == {
        "x/a.jpg": 17, "sub/b.jpg": 3, "new.jpg": 18, "z.jpg": 19}
    assert assign_image_ids(["b.jpg", "a.jpg"], []) == {"b.jpg": 1, "a.jpg": 2}
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match=r"annotation file '.*bad\.json' is not valid JSON"):
        assign_image_ids(["a.jpg"], [str(tmp_path / "bad.json")])
