"""ADE-style semantic data: TAO's JSON Lines `annot_file`, one `{"img": ..., "segm": ...}` per line, paths
relative to `root_dir`; each `segm` is a single-channel PNG whose pixel values are raw category ids.

0 and 255, following TAO: TAO's loader drops the value 0 from the targets and its mIoU treats 0 as
"unlabelled" (`reduce_zero_label`), with 255 as the ignore value. Here 255 is always ignored, and 0 is
ignored unless the label map lists a category with id 0 (then it is an ordinary class). Any other value
missing from the label map is a DataError naming the PNG and the line, because silently ignoring it would
hide a wrong label map.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mask2former.data.base import RawSample, SegmentationDataset, SegmentInfo
from mask2former.data.io import check_same_size, read_image, read_jsonl, read_label_png
from mask2former.data.label_map import IGNORE_INDEX, Categories
from mask2former.data.transforms import Compose
from skillkit.errors import DataError

UNLABELLED = 0


class AdeDataset(SegmentationDataset):
    def __init__(self, *, annot_file: str | Path, root_dir: str | Path, categories: Categories, mode: str,
                 is_train: bool, transforms: Compose):
        super().__init__(categories=categories, mode=mode, is_train=is_train, transforms=transforms)
        self.annot_file = Path(annot_file)
        self.root_dir = Path(root_dir)
        self._records: list[tuple[int, Path, Path, str]] = []
        for line, row in read_jsonl(self.annot_file):
            where = f"annotation file {self.annot_file} line {line}"
            if not isinstance(row, Mapping) or not isinstance(row.get("img"), str) \
                    or not isinstance(row.get("segm"), str):
                raise DataError(f"{where} must be an object with string keys 'img' and 'segm'")
            img, segm = self.root_dir / row["img"], self.root_dir / row["segm"]
            for path, what in ((img, "image"), (segm, "segmentation mask")):
                if not path.is_file():
                    raise DataError(f"{what} {path} does not exist ({where})")
            self._records.append((line, img, segm, row["img"]))
        if not self._records:
            raise DataError(f"annotation file {self.annot_file} has no records")
        if IGNORE_INDEX in categories.raw_to_train:
            raise DataError(f"label map {categories.source} lists category id {IGNORE_INDEX}, which ADE masks use "
                            "as the ignore value; renumber that category")
        self._raw_ids = np.array(sorted(categories.raw_to_train), dtype=np.int64)

    def __len__(self) -> int:
        return len(self._records)

    def load(self, index: int) -> RawSample:
        line, img_path, segm_path, name = self._records[index]
        record = f"annotation file {self.annot_file} line {line}"
        image = read_image(img_path, record=record)
        values = read_label_png(segm_path, record=record)
        check_same_size(image, values, image_path=img_path, mask_path=segm_path, record=record)
        known = np.isin(values, self._raw_ids)
        unknown = ~known & (values != IGNORE_INDEX) & (values != UNLABELLED)
        if unknown.any():
            bad = sorted(set(np.unique(values[unknown]).tolist()))
            raise DataError(f"segmentation mask {segm_path} ({record}) has category id(s) {bad[:10]} that are not "
                            f"in the label map {self.categories.source}")
        # Segment id = raw category id + 1 so that 0 stays void even when the label map has a category 0.
        id_map = np.where(known, values + 1, 0)
        segments = []
        for raw_id in np.unique(values[known]).tolist():
            cat = self.categories.by_train_id(self.categories.raw_to_train[raw_id])
            segments.append(SegmentInfo(id=raw_id + 1, train_id=cat.train_id, iscrowd=False, isthing=cat.isthing))
        return RawSample(image=image, id_map=id_map, segments=tuple(segments), image_id=index, file_name=name)
