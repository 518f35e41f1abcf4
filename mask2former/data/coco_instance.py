"""COCO instances: `instance_json` (polygons or RLE, decoded with pycocotools) + images in `img_dir`.

Instances are painted into one segment-id map so they share the transforms of the other formats: crowd
regions first, then the others from largest to smallest, so a small object lying on a large one stays
visible (where instances overlap, the pixel goes to the smaller one; TAO paints the same way). Crowd
annotations are never training targets; they are crowd regions for mask AP. One item per image, images
without annotations included.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from mask2former.data.base import RawSample, SegmentationDataset, SegmentInfo
from mask2former.data.io import read_image
from mask2former.data.label_map import Categories, load_json_file
from mask2former.data.transforms import Compose
from skillkit.errors import DataError


class CocoInstanceDataset(SegmentationDataset):
    provides_instances = True

    def __init__(self, *, instance_json: str | Path, img_dir: str | Path, categories: Categories, mode: str,
                 is_train: bool, transforms: Compose, raw: Mapping[str, Any] | None = None):
        super().__init__(categories=categories, mode=mode, is_train=is_train, transforms=transforms)
        self.instance_json = Path(instance_json)
        self.img_dir = Path(img_dir)
        data = raw if raw is not None else load_json_file(self.instance_json, what="instance annotation file")
        self._images, self._anns = self._index(data)

    def _index(self, data: Any) -> tuple[list[dict], dict[Any, list[tuple[int, dict]]]]:
        source = self.instance_json
        if not isinstance(data, Mapping) or not isinstance(data.get("images"), list) \
                or not isinstance(data.get("annotations"), list):
            raise DataError(f"instance annotation file {source} must be an object with lists 'images' and "
                            "'annotations' (COCO format)")
        images = []
        by_id: dict[Any, dict] = {}
        for i, image in enumerate(data["images"]):
            if not isinstance(image, Mapping) or "id" not in image or not isinstance(image.get("file_name"), str):
                raise DataError(f"instance annotation file {source}: images[{i}] needs 'id' and 'file_name'")
            if not isinstance(image.get("height"), int) or not isinstance(image.get("width"), int):
                raise DataError(f"instance annotation file {source}: images[{i}] ({image['file_name']}) needs "
                                "integer 'height' and 'width' to decode its masks")
            path = self.img_dir / image["file_name"]
            if not path.is_file():
                raise DataError(f"image {path} does not exist (instance annotation file {source}, images[{i}])")
            images.append(dict(image))
            by_id[image["id"]] = images[-1]
        anns: dict[Any, list[tuple[int, dict]]] = {image["id"]: [] for image in images}
        for i, ann in enumerate(data["annotations"]):
            where = f"instance annotation file {source}: annotations[{i}]"
            if not isinstance(ann, Mapping) or "segmentation" not in ann or "category_id" not in ann:
                raise DataError(f"{where} needs 'image_id', 'category_id' and 'segmentation'")
            image = by_id.get(ann.get("image_id"))
            if image is None:
                raise DataError(f"{where} has image_id {ann.get('image_id')!r}, which is not in 'images'")
            if ann["category_id"] not in self.categories.raw_to_train:
                raise DataError(f"{where} (image {image['file_name']}) has category id {ann['category_id']}, "
                                f"which is not in the label map {self.categories.source}")
            _check_segmentation(ann["segmentation"], where, image)
            anns[image["id"]].append((i, dict(ann)))
        if not images:
            raise DataError(f"instance annotation file {source} has no images")
        return images, anns

    def __len__(self) -> int:
        return len(self._images)

    def load(self, index: int) -> RawSample:
        info = self._images[index]
        record = f"image {index} of {self.instance_json}"
        path = self.img_dir / info["file_name"]
        image = read_image(path, record=record)
        h, w = info["height"], info["width"]
        if image.shape[:2] != (h, w):
            raise DataError(f"image {path} is {image.shape[0]}x{image.shape[1]} (HxW) but its annotations "
                            f"({record}) are for {h}x{w}; image and mask sizes must match")
        decoded = []
        for seg_id, (_ann_index, ann) in enumerate(self._anns[info["id"]], start=1):
            mask = decode_segmentation(ann["segmentation"], h, w)
            cat = self.categories.by_train_id(self.categories.raw_to_train[ann["category_id"]])
            segment = SegmentInfo(id=seg_id, train_id=cat.train_id, iscrowd=bool(ann.get("iscrowd", 0)),
                                  isthing=cat.isthing)
            decoded.append((segment, mask))
        id_map = np.zeros((h, w), dtype=np.int64)
        # Crowd first, then large → small, so later (smaller) instances win where they overlap.
        for segment, mask in sorted(decoded, key=lambda sm: (not sm[0].iscrowd, -int(sm[1].sum()))):
            id_map[mask] = segment.id
        return RawSample(image=image, id_map=id_map, segments=tuple(s for s, _ in decoded),
                         image_id=info["id"], file_name=info["file_name"])


def decode_segmentation(segmentation: Any, h: int, w: int) -> np.ndarray:
    """COCO polygon list, uncompressed RLE or compressed RLE → bool [h, w]."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, h, w))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, h, w)
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


def _check_segmentation(segmentation: Any, where: str, image: Mapping) -> None:
    h, w = image["height"], image["width"]
    if isinstance(segmentation, list):
        if not segmentation or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0
                                       for p in segmentation):
            raise DataError(f"{where} (image {image['file_name']}) has a polygon segmentation that is not a list "
                            "of [x1, y1, x2, y2, ...] lists with at least 3 points")
        return
    if not isinstance(segmentation, Mapping) or "counts" not in segmentation or "size" not in segmentation:
        raise DataError(f"{where} (image {image['file_name']}) has a segmentation that is neither polygons nor "
                        "RLE {'counts', 'size'}")
    if list(segmentation["size"]) != [h, w]:
        raise DataError(f"{where} (image {image['file_name']}) has an RLE of size {list(segmentation['size'])} "
                        f"but the image is {h}x{w}; image and mask sizes must match")
