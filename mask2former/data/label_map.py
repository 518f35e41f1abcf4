"""TAO label maps and the raw-id → class-index rule (`dataset.contiguous_id`).

A TAO label map is a JSON list of records `{"id": int, "name": str, "color": [r, g, b], "isthing": 0|1|bool}`.
`color` and `isthing` are optional (TAO falls back to a random colour and `isthing=1`; we fall back to a
colour derived from the id, so runs are reproducible).

The class index a category trains as (its *train id*) follows `contiguous_id`:

- `contiguous_id: true`  – categories sorted by raw id get train ids 0..N-1; `num_classes` must be N.
- `contiguous_id: false` – the raw category id IS the class index; `num_classes` must exceed the largest id.

(TAO's own loaders are not consistent here: its datasets use 1-based positions in the annotation file's
category list while its metadata uses 0-based positions, and it reserves class 0 for "unlabelled". We keep
one rule for every dataset type, so a label map means the same thing for coco, coco_panoptic and ade.)

The train id 255 is the ignore value of semantic maps, so no category may train as 255.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from skillkit.errors import DataError, SpecError

IGNORE_INDEX = 255
"""Value of `sem_seg` pixels that carry no label (void, crowd, padding, unlisted ids)."""


@dataclass(frozen=True)
class CategoryInfo:
    """One category: its raw id (as in annotations), the class index it trains as, and how it is drawn."""

    id: int
    train_id: int
    name: str
    color: tuple[int, int, int]
    isthing: bool


@dataclass(frozen=True)
class Categories:
    """All categories of a dataset plus the id maps every loader and evaluator needs.

    `items` is sorted by raw id. Lookups are read-only mappings built once in `__post_init__`.
    """

    items: tuple[CategoryInfo, ...]
    contiguous_id: bool
    source: str = ""
    raw_to_train: Mapping[int, int] = field(init=False, repr=False, compare=False)
    train_to_raw: Mapping[int, int] = field(init=False, repr=False, compare=False)
    _by_train: Mapping[int, CategoryInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "raw_to_train", MappingProxyType({c.id: c.train_id for c in self.items}))
        object.__setattr__(self, "train_to_raw", MappingProxyType({c.train_id: c.id for c in self.items}))
        object.__setattr__(self, "_by_train", MappingProxyType({c.train_id: c for c in self.items}))

    def __reduce__(self):
        # The derived read-only maps are rebuilt on load (mappingproxy cannot be pickled), so datasets and
        # evaluators holding categories travel to spawned DataLoader workers and DDP processes.
        return (Categories, (self.items, self.contiguous_id, self.source))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    @property
    def thing_train_ids(self) -> frozenset[int]:
        return frozenset(c.train_id for c in self.items if c.isthing)

    @property
    def stuff_train_ids(self) -> frozenset[int]:
        return frozenset(c.train_id for c in self.items if not c.isthing)

    @property
    def min_num_classes(self) -> int:
        """Smallest `model.sem_seg_head.num_classes` that can represent every train id."""
        return max((c.train_id for c in self.items), default=-1) + 1

    def by_train_id(self, train_id: int) -> CategoryInfo:
        return self._by_train[train_id]

    def colors(self) -> dict[int, tuple[int, int, int]]:
        """Train id → RGB colour."""
        return {c.train_id: c.color for c in self.items}

    def palette(self, num_classes: int | None = None) -> np.ndarray:
        """uint8 [num_classes, 3] colour table indexed by train id (unused rows black)."""
        size = max(num_classes or 0, self.min_num_classes)
        table = np.zeros((size, 3), dtype=np.uint8)
        for c in self.items:
            table[c.train_id] = c.color
        return table

    def check_num_classes(self, num_classes: int, *, key: str = "model.sem_seg_head.num_classes") -> None:
        """Raise SpecError when `num_classes` does not fit this label map: with contiguous ids it must equal
        the number of categories, otherwise it must exceed the largest raw id."""
        if num_classes < self.min_num_classes or (self.contiguous_id and num_classes != len(self)):
            if self.contiguous_id:
                rule = (f"with dataset.contiguous_id=true the {len(self)} categories train as 0..{len(self) - 1}, "
                        f"so it must be {len(self)}")
            else:
                biggest = max(c.id for c in self.items)
                rule = (f"with dataset.contiguous_id=false the raw category id is the class index and the "
                        f"largest id is {biggest}, so it must be at least {self.min_num_classes} "
                        f"(or set dataset.contiguous_id=true)")
            raise SpecError(f"{key}={num_classes} is too small for the label map {self.source or '(inline)'}: "
                            f"{rule}.")


def default_color(category_id: int) -> tuple[int, int, int]:
    """A stable, well-spread colour for a category that has none (golden-ratio hue walk)."""
    hue = (category_id * 0.618033988749895) % 1.0
    sector, frac = divmod(hue * 6.0, 1.0)
    v, s = 0.9, 0.75
    p, q, t = v * (1 - s), v * (1 - s * frac), v * (1 - s * (1 - frac))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][int(sector) % 6]
    return tuple(int(round(x * 255)) for x in rgb)  # type: ignore[return-value]


def _record_error(source: str, index: int, record: Any, problem: str) -> DataError:
    return DataError(f"label map {source}: record {index} ({json.dumps(record, default=str)[:200]}) {problem}")


def _parse_record(source: str, index: int, record: Any) -> tuple[int, str, tuple[int, int, int], bool]:
    if not isinstance(record, Mapping):
        raise _record_error(source, index, record, "must be an object with keys id, name, color, isthing")
    if "id" not in record:
        raise _record_error(source, index, record, "has no 'id' (an integer category id >= 0)")
    cat_id = record["id"]
    if isinstance(cat_id, bool) or not isinstance(cat_id, int) or cat_id < 0:
        raise _record_error(source, index, record, f"has id {cat_id!r}; an integer >= 0 is required")
    name = record.get("name")
    if not isinstance(name, str) or not name:
        raise _record_error(source, index, record, "needs a non-empty string 'name'")
    color = record.get("color")
    if color is None:
        rgb = default_color(cat_id)
    else:
        if (not isinstance(color, (list, tuple)) or len(color) != 3
                or any(isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= 255 for x in color)):
            raise _record_error(source, index, record, f"has color {color!r}; [r, g, b] with integers 0..255 "
                                                       "is required")
        rgb = (int(color[0]), int(color[1]), int(color[2]))
    isthing = record.get("isthing", 1)
    if isinstance(isthing, bool):
        thing = isthing
    elif isinstance(isthing, int) and isthing in (0, 1):
        thing = bool(isthing)
    else:
        raise _record_error(source, index, record, f"has isthing {isthing!r}; 0, 1, true or false is required")
    return cat_id, name, rgb, thing


def categories_from_records(records: Sequence[Any], *, contiguous_id: bool, source: str = "") -> Categories:
    """Validate label-map records and assign train ids (see the module docstring for the rule)."""
    if not isinstance(records, (list, tuple)):
        raise DataError(f"label map {source}: expected a JSON list of category records, got "
                        f"{type(records).__name__}")
    if not records:
        raise DataError(f"label map {source}: the list of categories is empty; at least one is required")
    parsed: dict[int, tuple[int, str, tuple[int, int, int], bool]] = {}
    for index, record in enumerate(records):
        cat_id, name, rgb, thing = _parse_record(source, index, record)
        if cat_id in parsed:
            raise _record_error(source, index, record, f"repeats category id {cat_id}; ids must be unique")
        parsed[cat_id] = (cat_id, name, rgb, thing)
    items = []
    for position, cat_id in enumerate(sorted(parsed)):
        _, name, rgb, thing = parsed[cat_id]
        train_id = position if contiguous_id else cat_id
        if train_id == IGNORE_INDEX:
            raise DataError(f"label map {source}: category id {cat_id} ({name!r}) would train as class "
                            f"{IGNORE_INDEX}, which is the ignore value of semantic maps; renumber it or set "
                            "dataset.contiguous_id=true")
        items.append(CategoryInfo(id=cat_id, train_id=train_id, name=name, color=rgb, isthing=thing))
    return Categories(items=tuple(items), contiguous_id=contiguous_id, source=source)


def load_json_file(path: str | Path, *, what: str) -> Any:
    """Read a JSON file, turning a missing file or bad JSON into a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist (or is not a file)")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(f"{what} {path} is not valid JSON: {error.msg} at line {error.lineno} "
                        f"column {error.colno}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{what} {path} cannot be read: {error}") from None


def load_label_map(path: str | Path, *, contiguous_id: bool) -> Categories:
    """Load and validate a TAO label map JSON file (`dataset.label_map`); a COCO-style object with a
    `categories` list is accepted too."""
    records = load_json_file(path, what="label map")
    if isinstance(records, Mapping) and "categories" in records:
        records = records["categories"]
    return categories_from_records(records, contiguous_id=contiguous_id, source=str(path))


def categories_from_coco(categories: Iterable[Mapping[str, Any]], *, contiguous_id: bool,
                         source: str) -> Categories:
    """Categories from a COCO / COCO-panoptic JSON `categories` list (used when no label map is given)."""
    records = [
        {k: v for k, v in dict(c).items() if k in ("id", "name", "color", "isthing")}
        for c in categories
    ]
    return categories_from_records(records, contiguous_id=contiguous_id, source=f"{source} (categories)")
