"""Write synthetic datasets in the real on-disk formats (tests, quickstart, benchmarks).

One call writes one dataset root; deterministic for a given (format, seed, size, number of images, stream),
archives included (fixed member order, owners and times). Layouts, with the spec field each file feeds:

coco_panoptic/
    images.tar.gz               img_dir          (folder `images/` of JPEGs; resolves to that folder)
    images_panoptic.tar.gz      panoptic_dir     (folder `panoptic/` of PNGs, id = R + 256·G + 256²·B)
    annotations_panoptic.json   panoptic_json    (COCO panoptic: things, stuff, crowd)
    annotations.json            instance_json    (COCO instances of the things: polygons, RLE, crowd)
    label_map_panoptic.json     dataset.label_map
coco/
    images.tar.gz               img_dir
    annotations.json            instance_json
    label_map.json              dataset.label_map (things only)
ade/
    images.tar.gz               root_dir         (`images/*.jpg` and `annotations/*.png` of category ids;
                                                  two top-level folders, so it resolves to the archive root)
    annotations.jsonl           annot_file       ({"img": "images/….jpg", "segm": "annotations/….png"} lines,
                                                  relative to root_dir)
    label_map.json              dataset.label_map

Every root also gets `synth.json`, which records the parameters and these field → file mappings.
Raw category ids are 1, 2, 3 (things) and 5, 6, 7 (stuff): with `contiguous_id: false` a model needs
`num_classes >= 8`, with `contiguous_id: true` it needs 6 (3 for coco).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from mask2former.data.io import id_to_rgb
from mask2former.data.synth_scene import CATEGORIES, THING_IDS, Scene, make_scene
from skillkit.errors import DataError

SYNTH_FORMATS = ("coco_panoptic", "coco", "ade")
_STREAM_SALT = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class SynthDataset:
    """A written dataset root: where it is and the spec values that point at it."""

    root: Path
    format: str
    num_images: int
    label_map: Path
    split_fields: dict  # dataset.<split> fields (absolute paths), e.g. {"type": "ade", "root_dir": ...}

    def dataset_section(self, **overrides: Any) -> dict:
        """`split_fields` completed with TAO's other split keys (batch_size 1, num_workers 0)."""
        base = {"type": self.format, "name": "synthetic", "panoptic_json": "", "instance_json": "", "img_dir": "",
                "panoptic_dir": "", "root_dir": "", "annot_file": "", "batch_size": 1, "num_workers": 0,
                "target_size": []}
        base.update(self.split_fields)
        base.update(overrides)
        return base


def write_synthetic_dataset(out_dir: str | Path, *, fmt: str, num_images: int, seed: int, size: int = 128,
                            stream: str = "train") -> SynthDataset:
    """Write one dataset root of `num_images` scenes of `size`×`size` pixels.

    `stream` ("train", "val", "test") salts the random stream so a val root made with the same seed holds
    different images.
    """
    if fmt not in SYNTH_FORMATS:
        raise DataError(f"synthetic format {fmt!r} is not supported; use one of {', '.join(SYNTH_FORMATS)}")
    if num_images < 1:
        raise DataError(f"--num-images={num_images} must be at least 1")
    if size < 32:
        raise DataError(f"--size={size} must be at least 32 pixels")
    if stream not in _STREAM_SALT:
        raise DataError(f"stream {stream!r} must be one of {', '.join(_STREAM_SALT)}")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([int(seed), _STREAM_SALT[stream], SYNTH_FORMATS.index(fmt)])
    scenes = [make_scene(rng, size) for _ in range(num_images)]
    names = [f"{i:06d}" for i in range(num_images)]
    writer = {"coco_panoptic": _write_coco_panoptic, "coco": _write_coco, "ade": _write_ade}[fmt]
    label_map, fields = writer(root, scenes, names)
    info = {"format": fmt, "num_images": num_images, "seed": int(seed), "size": size, "stream": stream,
            "label_map": label_map.name,
            "split_fields": {k: (Path(v).name if k != "type" else v) for k, v in fields.items()}}
    (root / "synth.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return SynthDataset(root=root.resolve(), format=fmt, num_images=num_images, label_map=label_map.resolve(),
                        split_fields=fields)


def write_synthetic_splits(out_dir: str | Path, *, fmt: str, num_train: int, num_val: int, seed: int,
                           size: int = 128) -> dict[str, SynthDataset]:
    """`out_dir/train` and `out_dir/val`, two roots with disjoint random streams."""
    out = Path(out_dir)
    return {
        "train": write_synthetic_dataset(out / "train", fmt=fmt, num_images=num_train, seed=seed, size=size),
        "val": write_synthetic_dataset(out / "val", fmt=fmt, num_images=num_val, seed=seed, size=size,
                                       stream="val"),
    }


# ------------------------------------------------------------------------------------------------ writers
def _write_coco_panoptic(root: Path, scenes: list[Scene], names: list[str]) -> tuple[Path, dict]:
    images, annotations, pngs = [], [], {}
    for image_id, (scene, name) in enumerate(zip(scenes, names), start=1):
        h, w = scene.image.shape[:2]
        id_map = np.zeros((h, w), dtype=np.int64)
        segments: list[dict[str, Any]] = []
        counters: dict[int, int] = {}
        parts = [(cid, mask, False) for cid, mask in scene.stuff.items()]
        parts += [(t.category_id, t.mask, t.iscrowd) for t in scene.things]
        for category_id, mask, iscrowd in parts:
            counters[category_id] = counters.get(category_id, 0) + 1
            seg_id = category_id * 1000 + counters[category_id]  # > 255, so G carries part of the id
            id_map[mask] = seg_id
            segments.append({"id": seg_id, "category_id": category_id, "iscrowd": int(iscrowd),
                             "bbox": _bbox(mask), "area": int(mask.sum())})
        images.append({"id": image_id, "file_name": f"{name}.jpg", "height": h, "width": w})
        annotations.append({"image_id": image_id, "file_name": f"{name}.png", "segments_info": segments})
        pngs[f"panoptic/{name}.png"] = _png(id_to_rgb(id_map))
    categories = [{**c, "supercategory": "shape" if c["isthing"] else "scene"} for c in CATEGORIES]
    _write_json(root / "annotations_panoptic.json",
                {"images": images, "annotations": annotations, "categories": categories})
    _write_json(root / "annotations.json", _instances_json(scenes, names))
    _write_tar_gz(root / "images.tar.gz", {f"images/{n}.jpg": _jpeg(s.image) for s, n in zip(scenes, names)})
    _write_tar_gz(root / "images_panoptic.tar.gz", pngs)
    label_map = root / "label_map_panoptic.json"
    _write_json(label_map, [dict(c) for c in CATEGORIES])
    return label_map, {"type": "coco_panoptic", "img_dir": str((root / "images.tar.gz").resolve()),
                       "panoptic_dir": str((root / "images_panoptic.tar.gz").resolve()),
                       "panoptic_json": str((root / "annotations_panoptic.json").resolve()),
                       "instance_json": str((root / "annotations.json").resolve())}


def _write_coco(root: Path, scenes: list[Scene], names: list[str]) -> tuple[Path, dict]:
    _write_json(root / "annotations.json", _instances_json(scenes, names))
    _write_tar_gz(root / "images.tar.gz", {f"images/{n}.jpg": _jpeg(s.image) for s, n in zip(scenes, names)})
    label_map = root / "label_map.json"
    _write_json(label_map, [dict(c) for c in CATEGORIES if c["isthing"]])
    return label_map, {"type": "coco", "img_dir": str((root / "images.tar.gz").resolve()),
                       "instance_json": str((root / "annotations.json").resolve())}


def _write_ade(root: Path, scenes: list[Scene], names: list[str]) -> tuple[Path, dict]:
    members, lines = {}, []
    for scene, name in zip(scenes, names):
        values = np.zeros(scene.image.shape[:2], dtype=np.uint8)  # 0 = unlabelled (void seam)
        for category_id, mask in scene.stuff.items():
            values[mask] = category_id
        for thing in scene.things:
            values[thing.mask] = thing.category_id
        members[f"images/{name}.jpg"] = _jpeg(scene.image)
        members[f"annotations/{name}.png"] = _png(values)
        lines.append(json.dumps({"img": f"images/{name}.jpg", "segm": f"annotations/{name}.png"}))
    _write_tar_gz(root / "images.tar.gz", members)
    (root / "annotations.jsonl").write_text("\n".join(lines) + "\n")
    label_map = root / "label_map.json"
    _write_json(label_map, [dict(c) for c in CATEGORIES])
    return label_map, {"type": "ade", "root_dir": str((root / "images.tar.gz").resolve()),
                       "annot_file": str((root / "annotations.jsonl").resolve())}


def _instances_json(scenes: list[Scene], names: list[str]) -> dict:
    """COCO instances for the things: polygons for most, compressed RLE for every third, and
    uncompressed RLE for crowd regions (as COCO itself stores crowds)."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, (scene, name) in enumerate(zip(scenes, names), start=1):
        h, w = scene.image.shape[:2]
        images.append({"id": image_id, "file_name": f"{name}.jpg", "height": h, "width": w})
        for thing in scene.things:
            ann_id = len(annotations) + 1
            if thing.iscrowd:
                segmentation: Any = _uncompressed_rle(thing.mask)
            elif ann_id % 3 == 0:
                rle = mask_utils.encode(np.asfortranarray(thing.mask.astype(np.uint8)))
                segmentation = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
            else:
                segmentation = [list(p) for p in thing.polygons]
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": thing.category_id,
                                "segmentation": segmentation, "area": int(thing.mask.sum()),
                                "bbox": _bbox(thing.mask), "iscrowd": int(thing.iscrowd)})
    categories = [{"id": c["id"], "name": c["name"], "supercategory": "shape"} for c in CATEGORIES
                  if c["id"] in THING_IDS]
    return {"images": images, "annotations": annotations, "categories": categories}


def _uncompressed_rle(mask: np.ndarray) -> dict:
    flat = mask.astype(np.uint8).flatten(order="F")  # COCO RLE runs go down columns
    bounds = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:  # runs alternate starting with zeros
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def _bbox(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [0, 0, 0, 0]
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


# ------------------------------------------------------------------------------------------------ packing
def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, sort_keys=True) + "\n")


def _write_tar_gz(path: Path, members: dict[str, bytes]) -> None:
    """A reproducible .tar.gz: sorted members, fixed owner and times, gzip header without a timestamp."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folders = sorted({str(Path(name).parent) for name in members} - {"."})
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name in sorted(members):
            data = members[name]
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(path)
