"""The backend-neutral description of one searched parameter (the search space's IR).

A `Parameter` is plain data: it says what values are allowed and how they are drawn, and carries a
one-line `why` that explains every decision the compiler made (scale, derived bounds, clipping).
It serialises to a flat mapping for the committed `search_spaces/*.yaml` files; `from_mapping`
validates hand-edited files the same way the compiler's output is validated.

Bound convention (one convention for the whole project): `low` and `high` are inclusive. Exclusive
schema bounds (`> 0`, `< 1.0`) are turned into inclusive ones at compile time and the `why` says how.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from skillkit.errors import SearchSpaceError

FLOAT = "float"
INT = "int"
CATEGORICAL = "categorical"
BOOL = "bool"
EPOCH_LIST = "epoch_list"            # sorted epochs, placed relative to the trial's epoch budget
SORTED_INT_LIST = "sorted_int_list"  # k sorted integers inside [low, high]
INT_RANGE_LIST = "int_range_list"    # consecutive integers [a, a+1, ..., b] inside [low, high]
REPEATED_INT_LIST = "repeated_int_list"  # one integer repeated `length` times ([k, k])
FLOAT_LIST = "float_list"            # element i inside [low[i], high[i]]
SUBSET_LIST = "subset_list"          # a subset of `choices`, in their order
OPTIONAL_LIST = "optional_list"      # None or the whole `choices` list

SCALAR_KINDS = frozenset({FLOAT, INT, CATEGORICAL, BOOL})
LIST_KINDS = frozenset({
    EPOCH_LIST, SORTED_INT_LIST, INT_RANGE_LIST, REPEATED_INT_LIST, FLOAT_LIST, SUBSET_LIST, OPTIONAL_LIST,
})
KINDS = SCALAR_KINDS | LIST_KINDS

RELATIONAL = (">", ">=", "<", "<=")
DERIVED = ("//",)              # value = parent // divisor (integers)
EPOCHS = "epochs"              # epoch list: the parent is the epoch count
RELATIONS = RELATIONAL + DERIVED + (EPOCHS,)

_T = TypeVar("_T")


@dataclass(frozen=True)
class Parameter:
    """One searched parameter.

    name: dotted spec path (`train.optim.lr`); kind: one of `KINDS`; low/high: inclusive bounds of a
    value (numeric kinds), of each element (integer list kinds), of the budget fraction (epoch lists)
    or per-element bound lists (float lists); scale: `linear` or `log`; step: values are multiples of
    it (numeric kinds, integer list elements); choices/weights: allowed values and their draw
    probabilities (None = uniform; for subset lists, each option's inclusion probability);
    parent/relation/divisor: a dependency on another parameter (see `RELATIONS`); excluded: single
    float values nudged away from (`!= v` inside a continuous range); min_items/max_items/length:
    list sizes; condition: the human-readable constraint; why: one line explaining the choices;
    hot: PBT may change it mid-training (schema mark `x_pbt: hot`); cold ones (the default) change a
    checkpoint's shapes or the data pipeline's meaning and are never perturbed.
    """

    name: str
    kind: str
    default: Any = None
    low: Any = None
    high: Any = None
    scale: str = "linear"
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None
    weights: tuple[float, ...] | None = None
    parent: str | None = None
    relation: str | None = None
    divisor: float | int | None = None
    excluded: tuple[float, ...] = ()
    min_items: int | None = None
    max_items: int | None = None
    length: int | None = None
    condition: str = ""
    why: str = ""
    tao_type: str = ""
    hot: bool = False

    def __post_init__(self) -> None:
        where = f"parameter '{self.name}'"
        if self.kind not in KINDS:
            raise SearchSpaceError(f"{where}: unknown kind {self.kind!r}; known kinds: {', '.join(sorted(KINDS))}.")
        if self.scale not in ("linear", "log"):
            raise SearchSpaceError(f"{where}: scale must be 'linear' or 'log', got {self.scale!r}.")
        if self.relation is not None and self.relation not in RELATIONS:
            raise SearchSpaceError(f"{where}: unknown relation {self.relation!r}; known: {', '.join(RELATIONS)}.")
        if (self.relation is None) != (self.parent is None) and self.kind != EPOCH_LIST:
            raise SearchSpaceError(f"{where}: 'parent' and 'relation' must be given together.")
        if self.relation in DERIVED and not self.divisor:
            raise SearchSpaceError(f"{where}: a derived parameter needs a non-zero 'divisor'.")
        if self.kind in (FLOAT, INT) and self.relation not in DERIVED:
            self._check_range(where)
        if self.kind in (CATEGORICAL, BOOL, SUBSET_LIST, OPTIONAL_LIST):
            if not self.choices:
                raise SearchSpaceError(f"{where}: kind {self.kind} needs a non-empty 'choices' list.")
        if self.weights is not None:
            if self.choices is None or len(self.weights) != len(self.choices):
                raise SearchSpaceError(
                    f"{where}: 'weights' needs one entry per choice ({len(self.choices or ())} choices, "
                    f"{len(self.weights)} weights)."
                )
            if any(not math.isfinite(w) or w < 0 for w in self.weights):
                raise SearchSpaceError(f"{where}: weights must be finite and >= 0, got {list(self.weights)}.")
            if self.kind != SUBSET_LIST and not math.isclose(sum(self.weights), 1.0, rel_tol=1e-6):
                raise SearchSpaceError(f"{where}: weights must sum to 1, got {sum(self.weights)}.")
            if self.kind == SUBSET_LIST and any(w > 1 for w in self.weights):
                raise SearchSpaceError(f"{where}: subset inclusion probabilities must be <= 1, got {list(self.weights)}.")
        if self.kind == FLOAT and self.scale == "log" and self.step is not None:
            raise SearchSpaceError(f"{where}: a log-scale float cannot also have a step.")
        if self.kind in (EPOCH_LIST, SORTED_INT_LIST, INT_RANGE_LIST, REPEATED_INT_LIST):
            self._check_range(where)
        if self.kind in (EPOCH_LIST, SORTED_INT_LIST):
            if self.min_items is None or self.max_items is None or not 0 <= self.min_items <= self.max_items:
                raise SearchSpaceError(
                    f"{where}: needs 0 <= min_items <= max_items, got ({self.min_items}, {self.max_items})."
                )
        if self.kind == EPOCH_LIST and not (0 < self.low <= self.high < 1):
            raise SearchSpaceError(
                f"{where}: an epoch list's low/high are fractions of the epoch budget with 0 < low <= high < 1, "
                f"got ({self.low}, {self.high})."
            )
        if self.kind == FLOAT_LIST:
            if not isinstance(self.low, (list, tuple)) or not isinstance(self.high, (list, tuple)) or len(self.low) != len(self.high):
                raise SearchSpaceError(f"{where}: a float list needs equally long low/high lists.")
            if any(a > b for a, b in zip(self.low, self.high)):
                raise SearchSpaceError(f"{where}: each low must be <= its high, got {list(self.low)} / {list(self.high)}.")

    def _check_range(self, where: str) -> None:
        for label, value in (("low", self.low), ("high", self.high)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise SearchSpaceError(f"{where}: '{label}' must be a finite number, got {value!r}.")
        if self.low > self.high:
            raise SearchSpaceError(f"{where}: low <= high must hold, but got (low={self.low}, high={self.high}).")
        if self.scale == "log" and self.low <= 0:
            raise SearchSpaceError(f"{where}: a log scale needs low > 0, got low={self.low}.")
        if self.step is not None and self.step <= 0:
            raise SearchSpaceError(f"{where}: step must be > 0, got {self.step}.")

    # -- typed views of the optional fields ------------------------------------------------------------------
    # For code that has already dispatched on `kind` or `relation`, which guarantee these fields (see
    # `__post_init__`); a missing one there is a bug in that code, and the error says which parameter.

    @property
    def options(self) -> tuple[Any, ...]:
        """`choices` (categorical, bool, subset and optional lists)."""
        return self._present("choices", self.choices)

    @property
    def parent_name(self) -> str:
        """`parent` (relational, derived and epoch-list parameters)."""
        return self._present("parent", self.parent)

    @property
    def relation_op(self) -> str:
        """`relation` (relational and derived parameters)."""
        return self._present("relation", self.relation)

    @property
    def item_counts(self) -> tuple[int, int]:
        """(`min_items`, `max_items`) of an epoch list or a sorted integer list."""
        return int(self._present("min_items", self.min_items)), int(self._present("max_items", self.max_items))

    @property
    def int_step(self) -> int | None:
        """`step` of an integer draw (None: every integer)."""
        if self.step is None:
            return None
        if float(self.step) != int(self.step):
            raise SearchSpaceError(f"parameter '{self.name}': an integer step must be a whole number, got {self.step}.")
        return int(self.step)

    def _present(self, field_name: str, value: _T | None) -> _T:
        if value is None:
            raise SearchSpaceError(f"parameter '{self.name}' (kind {self.kind}) has no '{field_name}'.")
        return value

    @property
    def is_derived(self) -> bool:
        return self.relation in DERIVED

    @property
    def is_relational(self) -> bool:
        return self.relation in RELATIONAL

    @property
    def is_conditional(self) -> bool:
        """Its value cannot come from one independent one-value distribution."""
        return self.parent is not None or self.kind in LIST_KINDS

    def range_text(self) -> str:
        """Compact human-readable description of the allowed values."""
        if self.kind in (CATEGORICAL, BOOL, SUBSET_LIST, OPTIONAL_LIST):
            shown = ", ".join(_short(c) for c in (self.choices or ()))
            return "{" + shown + "}"
        if self.is_derived:
            return f"{self.parent} {self.relation} {_short(self.divisor)}"
        if self.kind == EPOCH_LIST:
            return f"{self.min_items}-{self.max_items} epochs at {_short(self.low)}-{_short(self.high)} of budget"
        if self.kind == FLOAT_LIST:
            return " x ".join(f"[{_short(a)}, {_short(b)}]" for a, b in zip(self.low, self.high))
        text = f"[{_short(self.low)}, {_short(self.high)}]"
        if self.step is not None:
            text += f" step {_short(self.step)}"
        return text

    def to_mapping(self) -> dict[str, Any]:
        """Plain-data form (lists instead of tuples, empty fields left out) for YAML/JSON."""
        out: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None or value == () or value == "" or (item.name == "hot" and not value):
                continue
            if item.name == "scale" and self.kind not in (FLOAT, INT):
                continue
            out[item.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Parameter:
        if not isinstance(data, Mapping) or "name" not in data or "kind" not in data:
            raise SearchSpaceError(f"each search-space parameter needs at least 'name' and 'kind', got {data!r}.")
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SearchSpaceError(
                f"parameter '{data['name']}': unknown keys {unknown}; known keys: {', '.join(sorted(known))}."
            )
        values = dict(data)
        for key in ("choices", "weights", "excluded"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        for key in ("low", "high"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        return cls(**values)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


def join_notes(notes: Any) -> str:
    """One `why` line from notes (empty ones dropped)."""
    return "; ".join(note for note in notes if note)
