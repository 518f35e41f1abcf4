"""The synthetic generator: real formats, deterministic, consistent across files, and learnable."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from mask2former import cli
from mask2former.actions import dataset as dataset_action
from mask2former.data import resolve_folder
from mask2former.data.synth import write_synthetic_dataset
from mask2former.data.synth_scene import CATEGORIES
from skillkit.errors import DataError, UserError


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["coco_panoptic", "coco", "ade"])
def test_same_seed_same_bytes_other_seed_other_images(tmp_path, fmt):
    a = write_synthetic_dataset(tmp_path / "a", fmt=fmt, num_images=3, seed=7, size=48)
    b = write_synthetic_dataset(tmp_path / "b", fmt=fmt, num_images=3, seed=7, size=48)
    c = write_synthetic_dataset(tmp_path / "c", fmt=fmt, num_images=3, seed=8, size=48)
    files_a, files_b, files_c = _files(a.root), _files(b.root), _files(c.root)

    def strip(files):
        return {k: v for k, v in files.items() if k != "synth.json"}

    assert strip(files_a) == strip(files_b)
    assert files_a["images.tar.gz"] != files_c["images.tar.gz"]
    expected = {"coco_panoptic": {"images.tar.gz", "images_panoptic.tar.gz", "annotations.json",
                                  "annotations_panoptic.json", "label_map_panoptic.json", "synth.json"},
                "coco": {"images.tar.gz", "annotations.json", "label_map.json", "synth.json"},
                "ade": {"images.tar.gz", "annotations.jsonl", "label_map.json", "synth.json"}}[fmt]
    assert set(files_a) == expected
    info = json.loads(files_a["synth.json"])
    assert info["format"] == fmt and info["seed"] == 7 and info["num_images"] == 3


def test_panoptic_and_instance_files_agree(synth):
    written = synth["coco_panoptic"]
    panoptic = json.loads(Path(written.split_fields["panoptic_json"]).read_text())
    coco = COCO(written.split_fields["instance_json"])
    png_dir = resolve_folder(written.split_fields["panoptic_dir"])
    img_dir = resolve_folder(written.split_fields["img_dir"])
    assert {c["id"]: c["isthing"] for c in panoptic["categories"]} == {c["id"]: c["isthing"] for c in CATEGORIES}
    for image, ann in zip(panoptic["images"], panoptic["annotations"]):
        with Image.open(img_dir / image["file_name"]) as picture:
            assert picture.size == (image["width"], image["height"])
        with Image.open(png_dir / ann["file_name"]) as png:
            rgb = np.asarray(png, dtype=np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        assert set(np.unique(ids).tolist()) - {0} == {s["id"] for s in ann["segments_info"]}
        for seg in ann["segments_info"]:
            assert seg["area"] == int((ids == seg["id"]).sum())
        things = sorted((s["category_id"], bool(s["iscrowd"]), (ids == s["id"]).tobytes())
                        for s in ann["segments_info"] if s["category_id"] in (1, 2, 3))
        instances = sorted((a["category_id"], bool(a["iscrowd"]), coco.annToMask(a).astype(bool).tobytes())
                           for a in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])))
        assert things == instances


def test_class_is_learnable_from_colour(synth):
    """A nearest-mean-colour pixel classifier already gets most pixels right: the signal is real."""
    written = synth["ade"]
    root = resolve_folder(written.split_fields["root_dir"])
    lines = [json.loads(line) for line in Path(written.split_fields["annot_file"]).read_text().splitlines()]
    pixels, labels = [], []
    for line in lines:
        pixels.append(np.asarray(Image.open(root / line["img"]).convert("RGB"), dtype=np.float64).reshape(-1, 3))
        labels.append(np.asarray(Image.open(root / line["segm"]), dtype=np.int64).reshape(-1))
    pixels, labels = np.concatenate(pixels), np.concatenate(labels)
    keep = labels > 0
    pixels, labels = pixels[keep], labels[keep]
    classes = sorted(set(labels.tolist()))
    assert classes == [1, 2, 3, 5, 6, 7]
    half = len(labels) // 2
    means = np.stack([pixels[:half][labels[:half] == c].mean(0) for c in classes])
    predicted = np.array(classes)[np.argmin(((pixels[half:, None, :] - means[None]) ** 2).sum(-1), axis=1)]
    assert (predicted == labels[half:]).mean() > 0.9


def main(argv: list[str]) -> int:
    """`mask2former.cli.main` with only the dataset command registered (the full CLI imports Lightning)."""
    parser = argparse.ArgumentParser(prog="mask2former")
    dataset_action.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


def test_cli_writes_one_root_or_train_and_val(tmp_path, capsys):
    assert "mask2former.actions.dataset" in cli.COMMAND_MODULES
    assert main(["dataset", "synth", "--format", "coco", "--out", str(tmp_path / "one"), "--num-images", "2",
                 "--seed", "1", "--size", "48"]) == 0
    assert (tmp_path / "one" / "annotations.json").is_file()
    assert main(["dataset", "synth", "--format", "coco_panoptic", "--out", str(tmp_path / "two"), "--num-images",
                 "3", "--seed", "1", "--size", "48", "--split-val", "2"]) == 0
    train = json.loads((tmp_path / "two" / "train" / "annotations_panoptic.json").read_text())
    val = json.loads((tmp_path / "two" / "val" / "annotations_panoptic.json").read_text())
    assert len(train["images"]) == 3 and len(val["images"]) == 2
    assert (tmp_path / "two" / "train" / "images.tar.gz").read_bytes() != (tmp_path / "two" / "val" / "images.tar.gz").read_bytes()
    out = capsys.readouterr().out
    assert "train: coco_panoptic dataset with 3 images" in out and "val: coco_panoptic dataset with 2 images" in out
    assert main(["dataset", "synth", "--format", "ade", "--out", str(tmp_path / "x"), "--num-images", "1",
                 "--size", "8"]) == DataError.exit_code
    assert "error: --size=8 must be at least 32 pixels" in capsys.readouterr().err


@pytest.mark.slow
def test_real_cli_entry_point(tmp_path, capsys):
    """Through `mask2former.cli.main` itself (slow only because the full CLI imports Lightning)."""
    assert cli.main(["dataset", "synth", "--format", "ade", "--out", str(tmp_path / "ade"), "--num-images", "2",
                     "--size", "32"]) == 0
    assert (tmp_path / "ade" / "annotations.jsonl").read_text().count("\n") == 2
    assert cli.main(["dataset", "synth", "--format", "ade", "--out", str(tmp_path / "x"), "--num-images", "0"]) == 6
    assert "error: --num-images=0 must be at least 1" in capsys.readouterr().err
