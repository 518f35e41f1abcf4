"""Every dataset type against generated real-format data, with contiguous_id both ways.

Expected values are computed here straight from the files (PIL + numpy + pycocotools), not through the
loaders, so a loader bug cannot agree with itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from mask2former.data import (
    IGNORE_INDEX,
    build_dataloader,
    build_dataset,
    check_mode,
    load_categories,
    resolve_folder,
)
from mask2former.data.synth_scene import CATEGORIES
from skillkit.errors import DataError, SpecError

RAW_IDS = sorted(c["id"] for c in CATEGORIES)  # 1, 2, 3, 5, 6, 7
THINGS = {c["id"] for c in CATEGORIES if c["isthing"]}


def train_id(raw: int, contiguous: bool, ids=RAW_IDS) -> int:
    return ids.index(raw) if contiguous else raw


def panoptic_png(root: Path, name: str) -> np.ndarray:
    rgb = np.asarray(Image.open(resolve_folder(root / "images_panoptic.tar.gz") / name).convert("RGB"), dtype=np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


@pytest.mark.parametrize("contiguous", [True, False])
def test_coco_panoptic_items_match_the_files(synth, dataset_cfg, contiguous):
    written = synth["coco_panoptic"]
    cfg, split = dataset_cfg(written, contiguous_id=contiguous)
    dataset = build_dataset(split, dataset_cfg=cfg, mode="panoptic", is_train=False)
    assert dataset.name == "synthetic"
    annotations = json.loads(Path(written.split_fields["panoptic_json"]).read_text())
    assert len(dataset) == len(annotations["annotations"]) == 8
    saw_crowd = False
    for index, ann in enumerate(annotations["annotations"]):
        item = dataset[index]
        ids = panoptic_png(written.root, ann["file_name"])
        expected_sem = np.full(ids.shape, IGNORE_INDEX)
        expected_labels, expected_masks = [], []
        for seg in ann["segments_info"]:
            if seg["iscrowd"]:
                saw_crowd = True
                continue
            expected_sem[ids == seg["id"]] = train_id(seg["category_id"], contiguous)
            expected_labels.append(train_id(seg["category_id"], contiguous))
            expected_masks.append(ids == seg["id"])
        assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
        assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
        assert item["orig_size"] == (64, 64)
        assert np.array_equal(item["sem_seg"].numpy(), expected_sem)
        assert sorted(item["labels"].tolist()) == sorted(expected_labels)
        got = {(int(label), m.numpy().tobytes()) for label, m in zip(item["labels"], item["masks"])}
        assert got == {(label, m.tobytes()) for label, m in zip(expected_labels, expected_masks)}
        assert item["masks"].dtype == torch.bool
        # PQ ground truth keeps crowd segments, flagged, with train ids
        pan = item["panoptic"]
        assert np.array_equal(pan["id_map"].numpy(), np.where(np.isin(ids, [s["id"] for s in ann["segments_info"]]), ids, 0))
        assert {(s["id"], s["category_id"], s["iscrowd"]) for s in pan["segments"]} == {
            (s["id"], train_id(s["category_id"], contiguous), bool(s["iscrowd"])) for s in ann["segments_info"]}
        assert item["instances"] is None
    assert saw_crowd, "the fixture data must contain a crowd segment"


@pytest.mark.parametrize("contiguous", [True, False])
def test_coco_instance_items_match_pycocotools(synth, dataset_cfg, contiguous):
    written = synth["coco"]
    cfg, split = dataset_cfg(written, contiguous_id=contiguous)
    dataset = build_dataset(split, dataset_cfg=cfg, mode="instance", is_train=False)
    coco = COCO(written.split_fields["instance_json"])
    thing_ids = sorted(THINGS)
    assert len(dataset) == len(coco.getImgIds())
    formats = set()
    for index, image_id in enumerate(sorted(coco.getImgIds())):
        item = dataset[index]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        expected = [(train_id(a["category_id"], contiguous, thing_ids), coco.annToMask(a).astype(bool))
                    for a in anns if not a["iscrowd"]]
        formats.update("polygon" if isinstance(a["segmentation"], list) else
                       ("rle-list" if isinstance(a["segmentation"]["counts"], list) else "rle") for a in anns)
        got = {(int(label), m.numpy().tobytes()) for label, m in zip(item["labels"], item["masks"])}
        assert got == {(label, m.tobytes()) for label, m in expected}
        crowd = np.zeros((64, 64), dtype=bool)
        for a in anns:
            if a["iscrowd"]:
                crowd |= coco.annToMask(a).astype(bool)
        assert (item["sem_seg"].numpy()[crowd] == IGNORE_INDEX).all()
        # AP ground truth: every thing, crowd flagged
        inst = item["instances"]
        assert sorted(inst["iscrowd"].tolist()) == sorted(bool(a["iscrowd"]) for a in anns)
        assert item["panoptic"] is None
    assert formats == {"polygon", "rle", "rle-list"}


@pytest.mark.parametrize("contiguous", [True, False])
def test_ade_items_match_the_pngs(synth, dataset_cfg, contiguous):
    written = synth["ade"]
    cfg, split = dataset_cfg(written, contiguous_id=contiguous)
    dataset = build_dataset(split, dataset_cfg=cfg, mode="semantic", is_train=False)
    root = resolve_folder(written.split_fields["root_dir"])
    lines = [json.loads(line) for line in Path(written.split_fields["annot_file"]).read_text().splitlines()]
    assert len(dataset) == len(lines)
    saw_void = False
    for index, line in enumerate(lines):
        values = np.asarray(Image.open(root / line["segm"]), dtype=np.int64)
        expected = np.full(values.shape, IGNORE_INDEX)
        for raw in RAW_IDS:
            expected[values == raw] = train_id(raw, contiguous)
        saw_void |= bool((values == 0).any())
        item = dataset[index]
        assert np.array_equal(item["sem_seg"].numpy(), expected)
        present = sorted(set(expected[expected != IGNORE_INDEX].tolist()))
        assert item["labels"].tolist() == present  # semantic mode: one target per class present
        for label, mask in zip(item["labels"].tolist(), item["masks"]):
            assert np.array_equal(mask.numpy(), expected == label)
    assert saw_void, "the fixture data must contain unlabelled (0) pixels"


def test_ade_zero_is_a_class_only_when_the_label_map_lists_it(synth, dataset_cfg, tmp_path):
    written = synth["ade"]
    records = json.loads(written.label_map.read_text()) + [{"id": 0, "name": "seam", "color": [0, 0, 0], "isthing": 0}]
    label_map = tmp_path / "with_zero.json"
    label_map.write_text(json.dumps(records))
    cfg, split = dataset_cfg(written, contiguous_id=True, label_map=str(label_map))
    dataset = build_dataset(split, dataset_cfg=cfg, mode="semantic", is_train=False)
    root = resolve_folder(written.split_fields["root_dir"])
    line = json.loads(Path(written.split_fields["annot_file"]).read_text().splitlines()[0])
    values = np.asarray(Image.open(root / line["segm"]), dtype=np.int64)
    sem = dataset[0]["sem_seg"].numpy()
    assert (sem[values == 0] == 0).all()  # id 0 sorts first → train id 0
    assert (sem[values == 1] == 1).all()
    assert (sem != IGNORE_INDEX).all()


def test_modes_shape_the_targets(synth, dataset_cfg):
    written = synth["coco_panoptic"]
    cfg, split = dataset_cfg(written, contiguous_id=True)
    things = {0, 1, 2}
    panoptic = build_dataset(split, dataset_cfg=cfg, mode="panoptic", is_train=False)
    semantic = build_dataset(split, dataset_cfg=cfg, mode="semantic", is_train=False)
    instance = build_dataset(split, dataset_cfg=cfg, mode="instance", is_train=False)
    for index in range(len(panoptic)):
        p, s, i = panoptic[index], semantic[index], instance[index]
        assert s["labels"].tolist() == sorted(set(p["labels"].tolist()))  # instances merged per class
        assert set(i["labels"].tolist()) <= things and sorted(i["labels"].tolist()) == sorted(
            label for label in p["labels"].tolist() if label in things)
        stuff_pixels = (p["sem_seg"] >= 3) & (p["sem_seg"] != IGNORE_INDEX)
        assert (i["sem_seg"][stuff_pixels] == IGNORE_INDEX).all()  # instance mode ignores stuff
        assert torch.equal(s["sem_seg"], p["sem_seg"])
        assert i["instances"] is not None and p["instances"] is None
        assert p["panoptic"] is not None and i["panoptic"] is None


def test_train_items_are_augmented_and_crop_sized(synth, dataset_cfg):
    written = synth["coco_panoptic"]
    cfg, split = dataset_cfg(written, train_min_size=[96, 128], train_crop_size=[48, 40])
    dataset = build_dataset(split, dataset_cfg=cfg, mode="panoptic", is_train=True)
    torch.manual_seed(0)
    first = [dataset[0] for _ in range(4)]
    assert all(item["image"].shape == (3, 48, 40) for item in first)
    assert all(item["masks"].shape[1:] == (48, 40) and item["sem_seg"].shape == (48, 40) for item in first)
    assert len({item["image"].sum().item() for item in first}) > 1  # random crops / flips / jitter differ
    assert all(item["panoptic"] is None and item["instances"] is None for item in first)
    # masks and sem_seg stay consistent after augmentation
    for item in first:
        for label, mask in zip(item["labels"], item["masks"]):
            assert mask.any() and (item["sem_seg"][mask] == label).all()
    torch.manual_seed(0)
    again = [dataset[0] for _ in range(4)]
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(first, again))  # seeded by torch


@pytest.mark.parametrize("fmt,mode", [("coco_panoptic", "panoptic"), ("coco", "instance"), ("ade", "semantic")])
def test_dataloader_batches_every_format(synth, dataset_cfg, fmt, mode):
    cfg, split = dataset_cfg(synth[fmt])
    split.batch_size = 3
    split.num_workers = 0
    train = build_dataloader(split, dataset_cfg=cfg, mode=mode, is_train=True)
    val = build_dataloader(split, dataset_cfg=cfg, mode=mode, is_train=False)
    assert len(train) == 2 and len(val) == 3  # train drops the partial batch, val keeps every image
    batch = next(iter(train))
    assert batch["images"].shape == (3, 3, 64, 64)
    assert batch["sem_seg"].shape == (3, 64, 64) and len(batch["targets"]) == 3
    assert sum(len(b["metas"]) for b in val) == 8


def test_num_classes_rule_for_contiguous_id_both_ways(synth, dataset_cfg):
    written = synth["coco_panoptic"]
    cfg, split = dataset_cfg(written, contiguous_id=False)
    build_dataset(split, dataset_cfg=cfg, mode="panoptic", is_train=False, num_classes=8)
    with pytest.raises(SpecError, match=r"num_classes=7 .*largest id is 7, so it must be at least 8"):
        build_dataset(split, dataset_cfg=cfg, mode="panoptic", is_train=False, num_classes=7)
    cfg, split = dataset_cfg(written, contiguous_id=True)
    build_dataset(split, dataset_cfg=cfg, mode="panoptic", is_train=False, num_classes=6)
    with pytest.raises(SpecError, match=r"num_classes=8 .*contiguous_id=true the 6 categories .* must be 6"):
        build_dataset(split, dataset_cfg=cfg, mode="panoptic", is_train=False, num_classes=8)


def test_categories_contiguous_both_ways(synth, dataset_cfg):
    cfg, split = dataset_cfg(synth["coco_panoptic"], contiguous_id=True)
    cats = load_categories(cfg, split)
    assert dict(cats.raw_to_train) == {1: 0, 2: 1, 3: 2, 5: 3, 6: 4, 7: 5}
    assert cats.thing_train_ids == {0, 1, 2} and cats.stuff_train_ids == {3, 4, 5}
    cfg, split = dataset_cfg(synth["coco_panoptic"], contiguous_id=False)
    cats = load_categories(cfg, split)
    assert dict(cats.raw_to_train) == {i: i for i in RAW_IDS} and cats.min_num_classes == 8
    assert cats.palette().shape == (8, 3) and tuple(cats.palette()[1]) == (220, 40, 40)


def test_without_label_map_coco_json_categories_are_used(synth, dataset_cfg):
    cfg, split = dataset_cfg(synth["coco_panoptic"], contiguous_id=True, label_map="")
    cats = load_categories(cfg, split)
    assert [c.name for c in cats] == ["circle", "rectangle", "triangle", "sky", "ground", "background"]
    assert build_dataset(split, dataset_cfg=cfg, mode="panoptic", is_train=False)[0]["labels"].numel() > 0
    cfg, split = dataset_cfg(synth["ade"], label_map="")
    with pytest.raises(SpecError, match="dataset.label_map is empty"):
        build_dataset(split, dataset_cfg=cfg, mode="semantic", is_train=False)


@pytest.mark.parametrize("fmt,mode,message", [
    ("ade", "panoptic", r"model.mode=panoptic does not fit dataset.train.type=ade: .*use model.mode=semantic"),
    ("ade", "instance", r"model.mode=instance does not fit dataset.train.type=ade"),
    ("coco", "panoptic", r"model.mode=panoptic does not fit dataset.train.type=coco: panoptic needs coco_panoptic"),
])
def test_mode_must_fit_the_dataset_type(synth, dataset_cfg, fmt, mode, message):
    cfg, split = dataset_cfg(synth[fmt])
    with pytest.raises(SpecError, match=message):
        build_dataset(split, dataset_cfg=cfg, mode=mode, is_train=True)


def test_mode_check_fields_and_things(synth, dataset_cfg, tmp_path):
    cfg, split = dataset_cfg(synth["coco_panoptic"])
    assert check_mode("PANOPTIC", split) == "panoptic"
    assert check_mode("semantic", split) == "semantic"
    with pytest.raises(SpecError, match="model.mode='video' is not supported"):
        check_mode("video", split)
    split.panoptic_dir = ""
    with pytest.raises(SpecError, match=r"dataset.val.panoptic_dir is empty; dataset type coco_panoptic needs"):
        check_mode("panoptic", split, split="val")
    stuff_only = tmp_path / "stuff.json"
    stuff_only.write_text(json.dumps([c for c in CATEGORIES if not c["isthing"]]))
    cfg, split = dataset_cfg(synth["ade"], label_map=str(stuff_only))
    split.type = "coco"
    split.instance_json = "x.json"
    split.img_dir = "x"
    with pytest.raises(DataError, match="model.mode=instance needs thing categories"):
        check_mode("instance", split, load_categories(cfg, split))


def test_datasets_survive_spawned_workers(synth, dataset_cfg):
    """Categories and datasets pickle (spawned DataLoader workers, DDP) and load the same items there."""
    import pickle

    cfg, split = dataset_cfg(synth["coco_panoptic"])
    dataset = build_dataset(split, dataset_cfg=cfg, mode="panoptic", is_train=False)
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone.categories == dataset.categories and dict(clone.categories.raw_to_train) == dict(dataset.categories.raw_to_train)
    assert torch.equal(clone[2]["sem_seg"], dataset[2]["sem_seg"])
    split.num_workers = 2
    split.batch_size = 4
    batches = list(build_dataloader(split, dataset_cfg=cfg, mode="panoptic", is_train=False))
    assert len(batches) == 2 and torch.equal(batches[0]["sem_seg"][2, :64, :64], dataset[2]["sem_seg"])


def test_loader_fields_and_relative_annot_file(synth, dataset_cfg):
    cfg, split = dataset_cfg(synth["ade"])
    split.batch_size = 0
    with pytest.raises(SpecError, match=r"dataset.train.batch_size=0 must be an integer >= 1"):
        build_dataset(split, dataset_cfg=cfg, mode="semantic", is_train=True)
    split.batch_size, split.num_workers = 1, -1
    with pytest.raises(SpecError, match=r"dataset.val.num_workers=-1 must be an integer >= 0"):
        build_dataset(split, dataset_cfg=cfg, mode="semantic", is_train=False)
    # a relative annot_file is looked up inside root_dir (here: inside the extracted archive)
    split.num_workers = 0
    root = resolve_folder(split.root_dir)
    (root / "inside.jsonl").write_text(Path(split.annot_file).read_text().splitlines()[0] + "\n")
    split.annot_file = "inside.jsonl"
    assert len(build_dataset(split, dataset_cfg=cfg, mode="semantic", is_train=False)) == 1
