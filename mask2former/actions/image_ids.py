"""COCO image ids for the images inference predicts, so its JSON files are scored as written.

COCO tools match predictions to ground truth by the integer `image_id` of the annotation file's `images`
list (panopticapi's `pq_compute` fails with "no prediction for the image with id ..." otherwise, and
pycocotools' `loadRes` drops results of unknown ids). So when the images come with COCO annotations, every
prediction carries the id the annotations give that image; the file name is kept beside it.

Which annotations describe the predicted images: `dataset.test.panoptic_json` / `instance_json` when set,
else those of `dataset.val` when `dataset.test.img_dir` is the val split's image folder (what
`hpo spec resolve --action inference --eval-dataset D` produces). An image is matched by its path relative
to the image folder, else by its base name. Images no annotation names get fresh ids above the largest
known one, in sorted path order (1, 2, ... when there are no annotations at all).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from skillkit.errors import DataError

if TYPE_CHECKING:
    from mask2former.config import DatasetConfig


def annotation_files(dataset_cfg: DatasetConfig) -> list[str]:
    """The COCO JSON files whose `images` describe `dataset.test.img_dir` (see the module docstring)."""
    test, val = dataset_cfg.test, dataset_cfg.val
    files = [test.panoptic_json, test.instance_json]
    if test.img_dir and test.img_dir == val.img_dir:
        files += [val.panoptic_json, val.instance_json]
    return [str(f) for f in files if f]


def _images_of(path: str) -> list[Mapping[str, Any]]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"annotation file '{path}' does not exist (it names the COCO image ids).") from None
    except json.JSONDecodeError as error:
        raise DataError(f"annotation file '{path}' is not valid JSON: {error.msg} at line {error.lineno}.") from None
    images = data.get("images") if isinstance(data, Mapping) else None
    return [image for image in images or [] if isinstance(image, Mapping) and "id" in image and "file_name" in image]


def assign_image_ids(relative_paths: Sequence[str], annotation_paths: Iterable[str]) -> dict[str, int]:
    """relative image path -> COCO image id, for every path."""
    by_path: dict[str, int] = {}
    by_name: dict[str, int] = {}
    for path in annotation_paths:
        for image in _images_of(path):
            file_name = PurePosixPath(str(image["file_name"]))
            by_path.setdefault(file_name.as_posix(), int(image["id"]))
            by_name.setdefault(file_name.name, int(image["id"]))
    assigned: dict[str, int] = {}
    for relative in relative_paths:
        found = by_path.get(relative, by_name.get(PurePosixPath(relative).name))
        if found is not None:
            assigned[relative] = found
    next_id = max([*by_path.values(), *assigned.values(), 0]) + 1
    for relative in relative_paths:
        if relative not in assigned:
            assigned[relative] = next_id
            next_id += 1
    return assigned
