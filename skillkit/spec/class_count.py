"""Check a spec's class count against its label map before anything trains.

What the check looks at is the skill's, not this kit's: `skill_info.yaml` names the keys in
`x_class_count` (this repository: `model.sem_seg_head.num_classes`, `dataset.label_map`,
`dataset.contiguous_id`) and the actions whose specs it applies to. The rule itself is TAO's label-map
convention: contiguous ids map the N categories to 0..N-1, so the class count must be N; raw ids use the
category ids as class indices, so the class count must exceed the largest id (COCO panoptic: ids up to
200, so 201). A skill without `x_class_count` gets no check.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skillkit.errors import DataError, SchemaError, SpecError
from skillkit.spec.dotted import get_dotted

INFO_KEY = "x_class_count"
_FIELDS = ("num_classes", "label_map", "contiguous_ids", "actions")


@dataclasses.dataclass(frozen=True)
class ClassCountRule:
    """Where a skill's specs keep the class count, the label map and the id mode, and which actions use them."""

    num_classes: str
    label_map: str
    contiguous_ids: str
    actions: tuple[str, ...]

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> ClassCountRule | None:
        """The rule `skill_info.yaml` declares under `x_class_count`, or None when it declares none."""
        entry = info.get(INFO_KEY)
        if entry is None:
            return None
        keys = _FIELDS[:3]
        if (not isinstance(entry, Mapping) or set(entry) != set(_FIELDS)
                or not all(isinstance(entry[key], str) and entry[key] for key in keys)
                or not isinstance(entry["actions"], list) or not all(isinstance(a, str) for a in entry["actions"])):
            raise SchemaError(
                f"skill_info.yaml '{INFO_KEY}' must be a mapping with exactly {', '.join(_FIELDS)}: the first three "
                f"dotted spec keys, 'actions' a list of action names; got {entry!r}."
            )
        return cls(entry["num_classes"], entry["label_map"], entry["contiguous_ids"], tuple(entry["actions"]))


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


def class_count_problem(spec: Mapping[str, Any], rule: ClassCountRule) -> str | None:
    """A message when the class count does not fit the label map, None when it fits or no local label map is set."""
    label_map = get_dotted(spec, rule.label_map, "")
    if not label_map or "://" in str(label_map) or not Path(label_map).is_file():
        return None
    ids = read_label_map_ids(Path(label_map))
    num_classes = get_dotted(spec, rule.num_classes, None)
    contiguous = bool(get_dotted(spec, rule.contiguous_ids, False))
    if not isinstance(num_classes, int):
        return None
    key, mode = f"'{rule.num_classes}' = {num_classes}", rule.contiguous_ids
    if contiguous and num_classes != len(ids):
        return (
            f"{key} but {mode} is true and the label map '{label_map}' has {len(ids)} categories: "
            f"set {rule.num_classes.rsplit('.', 1)[-1]}={len(ids)}."
        )
    if not contiguous and num_classes <= max(ids):
        name = rule.num_classes.rsplit(".", 1)[-1]
        return (
            f"{key} but {mode} is false, so raw category ids are class indices and the label map '{label_map}' has "
            f"ids up to {max(ids)}: set {name}={max(ids) + 1} (or {mode}=true with {name}={len(ids)})."
        )
    return None


def check_class_count(spec: Mapping[str, Any], rule: ClassCountRule) -> None:
    problem = class_count_problem(spec, rule)
    if problem:
        raise SpecError(problem)
