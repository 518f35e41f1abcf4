"""COCO panoptic: `panoptic_json` + one PNG per image in `panoptic_dir` + images in `img_dir`.

PNG pixels decode to segment ids (R + 256·G + 256²·B, 0 = void); each annotation's `segments_info` names
the category and `iscrowd` of every id. Crowd segments never become training targets (their pixels are
ignored in `sem_seg`) and are kept as crowd regions in the PQ ground truth. Pixels whose id is not listed
in `segments_info` are void. One item per annotation, as in TAO.

All structure and every category id is checked when the dataset is built, so a bad file stops a run before
training rather than mid-epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mask2former.data.base import RawSample, SegmentationDataset, SegmentInfo
from mask2former.data.io import check_same_size, read_image, read_panoptic_png
from mask2former.data.label_map import Categories, load_json_file
from mask2former.data.transforms import Compose
from skillkit.errors import DataError


class CocoPanopticDataset(SegmentationDataset):
    provides_panoptic = True
    provides_instances = True

    def __init__(self, *, panoptic_json: str | Path, img_dir: str | Path, panoptic_dir: str | Path,
                 categories: Categories, mode: str, is_train: bool, transforms: Compose,
                 raw: Mapping[str, Any] | None = None):
        super().__init__(categories=categories, mode=mode, is_train=is_train, transforms=transforms)
        self.panoptic_json = Path(panoptic_json)
        self.img_dir = Path(img_dir)
        self.panoptic_dir = Path(panoptic_dir)
        data = raw if raw is not None else load_json_file(self.panoptic_json, what="panoptic annotation file")
        self._records = self._index(data)

    def _index(self, data: Any) -> list[tuple[dict, dict, tuple[SegmentInfo, ...]]]:
        source = self.panoptic_json
        if not isinstance(data, Mapping) or not isinstance(data.get("images"), list) \
                or not isinstance(data.get("annotations"), list):
            raise DataError(f"panoptic annotation file {source} must be an object with lists 'images' and "
                            "'annotations' (COCO panoptic format)")
        images: dict[Any, dict] = {}
        for i, image in enumerate(data["images"]):
            if not isinstance(image, Mapping) or "id" not in image or not isinstance(image.get("file_name"), str):
                raise DataError(f"panoptic annotation file {source}: images[{i}] needs 'id' and 'file_name'")
            images[image["id"]] = dict(image)
        records = []
        for i, ann in enumerate(data["annotations"]):
            where = f"panoptic annotation file {source}: annotations[{i}]"
            if not isinstance(ann, Mapping) or not isinstance(ann.get("file_name"), str) \
                    or not isinstance(ann.get("segments_info"), list):
                raise DataError(f"{where} needs 'image_id', 'file_name' and a list 'segments_info'")
            image = images.get(ann.get("image_id"))
            if image is None:
                raise DataError(f"{where} has image_id {ann.get('image_id')!r}, which is not in 'images'")
            segments = []
            for j, info in enumerate(ann["segments_info"]):
                if not isinstance(info, Mapping) or not isinstance(info.get("id"), int) \
                        or not isinstance(info.get("category_id"), int):
                    raise DataError(f"{where} (image {image['file_name']}) segments_info[{j}] needs integer "
                                    "'id' and 'category_id'")
                category = info["category_id"]
                if category not in self.categories.raw_to_train:
                    raise DataError(f"{where} (image {image['file_name']}) segments_info[{j}] has category id "
                                    f"{category}, which is not in the label map {self.categories.source}")
                if info["id"] <= 0:
                    raise DataError(f"{where} (image {image['file_name']}) segments_info[{j}] has segment id "
                                    f"{info['id']}; segment ids must be >= 1 (0 is void)")
                cat = self.categories.by_train_id(self.categories.raw_to_train[category])
                segments.append(SegmentInfo(id=info["id"], train_id=cat.train_id,
                                            iscrowd=bool(info.get("iscrowd", 0)), isthing=cat.isthing))
            for path, what in ((self.img_dir / image["file_name"], "image"),
                               (self.panoptic_dir / ann["file_name"], "panoptic mask")):
                if not path.is_file():
                    raise DataError(f"{what} {path} does not exist ({where}, image {image['file_name']})")
            records.append((image, dict(ann), tuple(segments)))
        if not records:
            raise DataError(f"panoptic annotation file {source} has no annotations")
        return records

    def __len__(self) -> int:
        return len(self._records)

    def load(self, index: int) -> RawSample:
        image_info, ann, segments = self._records[index]
        record = f"annotation {index} of {self.panoptic_json}"
        image_path = self.img_dir / image_info["file_name"]
        png_path = self.panoptic_dir / ann["file_name"]
        image = read_image(image_path, record=record)
        id_map = read_panoptic_png(png_path, record=record)
        check_same_size(image, id_map, image_path=image_path, mask_path=png_path, record=record)
        _check_declared_size(image_info, image, image_path, record)
        listed = np.array([s.id for s in segments], dtype=np.int64)
        id_map = np.where(np.isin(id_map, listed), id_map, 0)  # unlisted ids are void
        return RawSample(image=image, id_map=id_map, segments=segments,
                         image_id=image_info["id"], file_name=image_info["file_name"])


def _check_declared_size(info: Mapping, image: np.ndarray, path: Path, record: str) -> None:
    h, w = info.get("height"), info.get("width")
    if h is not None and w is not None and (h, w) != image.shape[:2]:
        raise DataError(f"image {path} is {image.shape[0]}x{image.shape[1]} (HxW) but its annotation ({record}) "
                        f"declares {h}x{w}")
