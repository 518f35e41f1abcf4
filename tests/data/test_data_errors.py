"""Bad data ends in a DataError naming the file and the record — one test per kind of mistake."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask2former.config import DatasetSplitConfig
from mask2former.data import build_dataset, categories_from_records, load_label_map
from skillkit.errors import DataError


def _split(fields: dict) -> DatasetSplitConfig:
    return DatasetSplitConfig(**fields)


def _build(dataset_cfg, written, fields, *, mode, label_map=None, index=None):
    cfg, split = dataset_cfg(written, split=_split(fields), label_map=label_map)
    dataset = build_dataset(split, dataset_cfg=cfg, mode=mode, is_train=False)
    return dataset if index is None else dataset[index]


# ------------------------------------------------------------------------------------------- coco_panoptic
def test_panoptic_missing_image_file(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["coco_panoptic"])
    (Path(fields["img_dir"]) / "000003.jpg").unlink()
    with pytest.raises(DataError, match=r"image .*000003\.jpg does not exist \(panoptic annotation file .*"
                                        r"annotations_panoptic\.json: annotations\[3\]"):
        _build(dataset_cfg, synth["coco_panoptic"], fields, mode="panoptic")


def test_panoptic_bad_json(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["coco_panoptic"])
    path = Path(fields["panoptic_json"])
    path.write_text(path.read_text()[:200])
    with pytest.raises(DataError, match=r"panoptic annotation file .*annotations_panoptic\.json is not valid JSON: "
                                        r".* at line 1 column"):
        _build(dataset_cfg, synth["coco_panoptic"], fields, mode="panoptic")


def test_panoptic_category_not_in_label_map(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["coco_panoptic"])
    path = Path(fields["panoptic_json"])
    data = json.loads(path.read_text())
    data["annotations"][2]["segments_info"][1]["category_id"] = 42
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"annotations\[2\] \(image 000002\.jpg\) segments_info\[1\] has category id "
                                        r"42, which is not in the label map .*label_map_panoptic\.json"):
        _build(dataset_cfg, synth["coco_panoptic"], fields, mode="panoptic")


def test_panoptic_image_mask_size_mismatch(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["coco_panoptic"])
    png = Path(fields["panoptic_dir"]) / "000001.png"
    Image.open(png).resize((60, 64), Image.NEAREST).save(png)
    dataset = _build(dataset_cfg, synth["coco_panoptic"], fields, mode="panoptic")
    with pytest.raises(DataError, match=r"image .*000001\.jpg is 64x64 \(HxW\) but its mask .*000001\.png is 64x60 "
                                        r"\(annotation 1 of .*annotations_panoptic\.json\); they must match"):
        dataset[1]


def test_panoptic_corrupt_png(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["coco_panoptic"])
    (Path(fields["panoptic_dir"]) / "000004.png").write_bytes(b"not a png")
    dataset = _build(dataset_cfg, synth["coco_panoptic"], fields, mode="panoptic")
    with pytest.raises(DataError, match=r"panoptic mask .*000004\.png cannot be decoded \(annotation 4 of"):
        dataset[4]


# -------------------------------------------------------------------------------------------------- coco
def test_coco_missing_image_file(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["coco"])
    (Path(fields["img_dir"]) / "000005.jpg").unlink()
    with pytest.raises(DataError, match=r"image .*000005\.jpg does not exist \(instance annotation file "
                                        r".*annotations\.json, images\[5\]\)"):
        _build(dataset_cfg, synth["coco"], fields, mode="instance")


def test_coco_category_not_in_label_map(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["coco"])
    path = Path(fields["instance_json"])
    data = json.loads(path.read_text())
    data["annotations"][4]["category_id"] = 9
    path.write_text(json.dumps(data))
    image = data["annotations"][4]["image_id"] - 1
    with pytest.raises(DataError, match=rf"annotations\[4\] \(image 00000{image}\.jpg\) has category id 9, which is "
                                        r"not in the label map .*label_map\.json"):
        _build(dataset_cfg, synth["coco"], fields, mode="instance")


def test_coco_image_size_mismatch(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["coco"])
    image = Path(fields["img_dir"]) / "000002.jpg"
    Image.open(image).resize((64, 50)).save(image)
    dataset = _build(dataset_cfg, synth["coco"], fields, mode="instance")
    with pytest.raises(DataError, match=r"image .*000002\.jpg is 50x64 \(HxW\) but its annotations \(image 2 of "
                                        r".*annotations\.json\) are for 64x64; image and mask sizes must match"):
        dataset[2]


def test_coco_rle_size_mismatch(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["coco"])
    path = Path(fields["instance_json"])
    data = json.loads(path.read_text())
    index = next(i for i, a in enumerate(data["annotations"]) if isinstance(a["segmentation"], dict))
    data["annotations"][index]["segmentation"]["size"] = [32, 64]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"annotations\[{index}\] .* has an RLE of size \[32, 64\] but the image is "
                                        r"64x64"):
        _build(dataset_cfg, synth["coco"], fields, mode="instance")


def test_coco_bad_polygon(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["coco"])
    path = Path(fields["instance_json"])
    data = json.loads(path.read_text())
    data["annotations"][0]["segmentation"] = [[1, 2, 3]]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"annotations\[0\] .* polygon segmentation that is not a list"):
        _build(dataset_cfg, synth["coco"], fields, mode="instance")


# --------------------------------------------------------------------------------------------------- ade
def test_ade_pixel_value_not_in_label_map(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["ade"])
    png = Path(fields["root_dir"]) / "annotations" / "000006.png"
    values = np.asarray(Image.open(png)).copy()
    values[10:12, 10:12] = 9
    Image.fromarray(values).save(png)
    dataset = _build(dataset_cfg, synth["ade"], fields, mode="semantic")
    with pytest.raises(DataError, match=r"segmentation mask .*000006\.png \(annotation file .*annotations\.jsonl line 7\) "
                                        r"has category id\(s\) \[9\] that are not in the label map"):
        dataset[6]


def test_ade_bad_jsonl_line(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["ade"])
    path = Path(fields["annot_file"])
    lines = path.read_text().splitlines()
    lines[2] = '{"img": "images/000002.jpg", '
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"annotation file .*annotations\.jsonl line 3 is not valid JSON"):
        _build(dataset_cfg, synth["ade"], fields, mode="semantic")


def test_ade_record_without_segm(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["ade"])
    path = Path(fields["annot_file"])
    lines = path.read_text().splitlines()
    lines[1] = json.dumps({"img": "images/000001.jpg"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"annotations\.jsonl line 2 must be an object with string keys 'img' and 'segm'"):
        _build(dataset_cfg, synth["ade"], fields, mode="semantic")


def test_ade_missing_mask_file(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["ade"])
    (Path(fields["root_dir"]) / "annotations" / "000007.png").unlink()
    with pytest.raises(DataError, match=r"segmentation mask .*000007\.png does not exist \(annotation file "
                                        r".*annotations\.jsonl line 8\)"):
        _build(dataset_cfg, synth["ade"], fields, mode="semantic")


def test_ade_image_mask_size_mismatch(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["ade"])
    png = Path(fields["root_dir"]) / "annotations" / "000000.png"
    Image.open(png).resize((64, 63), Image.NEAREST).save(png)
    dataset = _build(dataset_cfg, synth["ade"], fields, mode="semantic")
    with pytest.raises(DataError, match=r"is 64x64 \(HxW\) but its mask .*000000\.png is 63x64 .*line 1\); they must match"):
        dataset[0]


def test_ade_label_map_with_ignore_id(synth, dataset_cfg, folder_copy, tmp_path):
    root, fields = folder_copy(synth["ade"])
    label_map = tmp_path / "lm.json"
    label_map.write_text(json.dumps([{"id": 1, "name": "a"}, {"id": 255, "name": "b"}]))
    with pytest.raises(DataError, match=r"lists category id 255, which ADE masks use as the ignore value"):
        _build(dataset_cfg, synth["ade"], fields, mode="semantic", label_map=str(label_map))


def test_missing_dataset_folder(synth, dataset_cfg, folder_copy):
    root, fields = folder_copy(synth["ade"])
    fields["root_dir"] = str(root / "nowhere")
    with pytest.raises(DataError, match=r"dataset path .*nowhere does not exist \(expected a folder or a \.tar\.gz"):
        _build(dataset_cfg, synth["ade"], fields, mode="semantic")


# --------------------------------------------------------------------------------------------- label map
@pytest.mark.parametrize("records,message", [
    ({"a": 1}, r"expected a JSON list of category records, got dict"),
    ([], r"the list of categories is empty"),
    ([{"name": "x"}], r"record 0 .* has no 'id'"),
    ([{"id": -1, "name": "x"}], r"record 0 .* has id -1; an integer >= 0 is required"),
    ([{"id": "3", "name": "x"}], r"record 0 .* has id '3'"),
    ([{"id": 1, "name": "x"}, {"id": 2}], r"record 1 .* needs a non-empty string 'name'"),
    ([{"id": 1, "name": "x", "color": [1, 2]}], r"record 0 .* has color \[1, 2\]; \[r, g, b\]"),
    ([{"id": 1, "name": "x", "color": [1, 2, 300]}], r"record 0 .* has color \[1, 2, 300\]"),
    ([{"id": 1, "name": "x", "isthing": 2}], r"record 0 .* has isthing 2; 0, 1, true or false is required"),
    ([{"id": 1, "name": "x"}, {"id": 1, "name": "y"}], r"record 1 .* repeats category id 1"),
    (["sky"], r"record 0 \(\"sky\"\) must be an object"),
])
def test_label_map_record_errors(tmp_path, records, message):
    path = tmp_path / "label_map.json"
    path.write_text(json.dumps(records))
    with pytest.raises(DataError, match=rf"label map .*label_map\.json: {message}"):
        load_label_map(path, contiguous_id=True)


def test_label_map_file_errors(tmp_path):
    with pytest.raises(DataError, match=r"label map .*missing\.json does not exist"):
        load_label_map(tmp_path / "missing.json", contiguous_id=False)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": 1,')
    with pytest.raises(DataError, match=r"label map .*bad\.json is not valid JSON"):
        load_label_map(bad, contiguous_id=False)


def test_label_map_ignore_train_id(tmp_path):
    records = [{"id": 255, "name": "x"}]
    with pytest.raises(DataError, match=r"category id 255 \('x'\) would train as class 255"):
        categories_from_records(records, contiguous_id=False, source="lm")
    assert categories_from_records(records, contiguous_id=True, source="lm").raw_to_train[255] == 0


def test_label_map_defaults_and_coco_object(tmp_path):
    path = tmp_path / "lm.json"
    path.write_text(json.dumps({"categories": [{"id": 7, "name": "b", "isthing": False}, {"id": 3, "name": "a"}]}))
    cats = load_label_map(path, contiguous_id=True)
    assert [(c.id, c.train_id, c.isthing) for c in cats] == [(3, 0, True), (7, 1, False)]
    assert all(len(c.color) == 3 and all(0 <= v <= 255 for v in c.color) for c in cats)
    assert cats.items[0].color != cats.items[1].color
    assert dict(cats.train_to_raw) == {0: 3, 1: 7}
