"""Check `model.sem_seg_head.num_classes` against the label map before anything trains.

`dataset.contiguous_id: true` maps the N categories to 0..N-1, so num_classes must be N;
`false` uses raw category ids as class indices, so num_classes must exceed the largest id
(COCO panoptic: ids up to 200, so 201).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skillkit.errors import DataError, SpecError
from skillkit.spec.dotted import get_dotted


def read_label_map_ids(path: Path) -> list[int]:
    """Category ids of a TAO label map (a JSON list of {id, name, ...}, or COCO's {"categories": [...]})."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"label map '{path}' is not valid JSON: {error.msg} at line {error.lineno}.") from None
    records = data.get("categories") if isinstance(data, Mapping) else data
    if not isinstance(records, list) or not records:
        raise DataError(f"label map '{path}' must be a non-empty JSON list of categories with an integer 'id'.")
    ids = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping) or not isinstance(record.get("id"), int) or isinstance(record.get("id"), bool):
            raise DataError(f"label map '{path}': record {index} ({record!r}) needs an integer 'id'.")
        ids.append(record["id"])
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DataError(f"label map '{path}': category id(s) {duplicates} appear more than once.")
    return ids


def class_count_problem(spec: Mapping[str, Any]) -> str | None:
    """A message when num_classes does not fit the label map, None when it fits or no local label map is set."""
    label_map = get_dotted(spec, "dataset.label_map", "")
    if not label_map or "://" in str(label_map) or not Path(label_map).is_file():
        return None
    ids = read_label_map_ids(Path(label_map))
    num_classes = get_dotted(spec, "model.sem_seg_head.num_classes", None)
    contiguous = bool(get_dotted(spec, "dataset.contiguous_id", False))
    if not isinstance(num_classes, int):
        return None
    if contiguous and num_classes != len(ids):
        return (
            f"'model.sem_seg_head.num_classes' = {num_classes} but dataset.contiguous_id is true and the label map "
            f"'{label_map}' has {len(ids)} categories: set num_classes={len(ids)}."
        )
    if not contiguous and num_classes <= max(ids):
        return (
            f"'model.sem_seg_head.num_classes' = {num_classes} but dataset.contiguous_id is false, so raw category ids "
            f"are class indices and the label map '{label_map}' has ids up to {max(ids)}: set num_classes={max(ids) + 1} "
            f"(or dataset.contiguous_id=true with num_classes={len(ids)})."
        )
    return None


def check_class_count(spec: Mapping[str, Any]) -> None:
    problem = class_count_problem(spec)
    if problem:
        raise SpecError(problem)
