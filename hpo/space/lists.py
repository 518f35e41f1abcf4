"""Compiling TAO's list kinds: epoch lists, `list_1_*`, `list_2`, `list_3`, subset and optional lists.

TAO samples these with per-network helper tables kept outside the schema; here everything comes from
the leaf (element bounds in `minimum`/`maximum` or `x_items`, sizes in `x_min_items`/`minItems`,
options in `valid_options`/`enum`/`x_items.enum`) or from `custom_param_ranges`, and a list whose
rule cannot be derived is an error naming it. Epoch lists (MultiStep `milestones`, `lr_steps`, or
any int list with `depends_on` an epoch count) are drawn as fractions of the trial's epoch budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hpo.space import ir
from hpo.space.bounds import custom_number, resolve_numeric, to_number
from hpo.space.choices import resolve_choices, scalar_option
from hpo.space.ir import Parameter, join_notes
from hpo.space.reader import SchemaInfo, SchemaLeaf
from skillkit.errors import SearchSpaceError
from skillkit.math_cond import MathCond

LIST_TYPES = frozenset({"list", "list_1_backbone", "list_1_normal", "list_2", "list_3", "subset_list", "optional_list"})
# Names TAO gives epoch lists (its per-network helper tables tie them to train.num_epochs).
EPOCH_LIST_NAMES = frozenset({"milestones", "lr_steps", "lr_decay_epochs", "decay_epochs", "step_epochs"})
EPOCH_COUNT_NAMES = ("num_epochs", "epochs", "max_epochs")
DEFAULT_EPOCH_FRACTIONS = (0.5, 0.98)


def epoch_parameter(info: SchemaInfo, name: str) -> str | None:
    parts = name.split(".")[:-1]
    while True:
        for candidate in EPOCH_COUNT_NAMES:
            path = ".".join([*parts, candidate])
            if path in info.leaves:
                return path
        if not parts:
            return None
        parts.pop()


def _items_key(leaf: SchemaLeaf, key: str) -> Any:
    for items_key in ("x_items", "items"):
        items = leaf.get(items_key)
        if isinstance(items, Mapping) and items.get(key) is not None:
            return items[key]
    return leaf.get(key)


def _count_text(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"


class ListCompiler:
    """Mixin for `compile._Compiler` (list kinds); uses its `info`, `parent()`, `_cond()` and `_no_dependency()`."""

    info: SchemaInfo

    # Provided by `compile._Compiler` (declared here so each list rule is type-checked against them).
    def parent(self, name: str, parent: Any, *, purpose: str) -> tuple[bool, Any]:
        raise NotImplementedError

    def _cond(self, leaf: SchemaLeaf, custom: Mapping[str, Any]) -> MathCond:
        raise NotImplementedError

    def _no_dependency(self, leaf: SchemaLeaf, custom: Mapping[str, Any], cond: MathCond, what: str) -> None:
        raise NotImplementedError

    def list_kind(self, leaf: SchemaLeaf, custom: Mapping[str, Any]) -> Parameter:
        name = leaf.path
        kind = leaf.type
        default = leaf.default if isinstance(leaf.default, list) else None
        if kind == "subset_list":
            return self.subset(leaf, custom)
        if kind == "optional_list":
            if leaf.get("option_weights") is not None or custom.get("weights") is not None:
                raise SearchSpaceError(
                    f"parameter '{name}': option_weights mean nothing for an optional_list (it is None or all options)."
                )
            choices, _, notes = resolve_choices(leaf, custom, name=name, cast=lambda v: scalar_option(v, name=name))
            return Parameter(
                name=name, kind=ir.OPTIONAL_LIST, default=default, choices=choices,
                why=join_notes(["None or all options, equally likely", *notes]), tao_type=kind,
            )
        if kind in ("list", "list_2") and self._is_epoch_list(leaf):
            return self.epoch_list(leaf, custom)
        minimum = _items_key(leaf, "minimum")
        maximum = _items_key(leaf, "maximum")
        if kind == "list_2" and isinstance(minimum, list) and isinstance(maximum, list):
            return self.float_list(leaf, custom, minimum, maximum)
        if kind == "list":
            raise SearchSpaceError(
                f"parameter '{name}' is a plain 'list', which has no sampling rule (TAO searches list_1_*, list_2, "
                "list_3, subset_list and optional_list); epoch lists are recognised by depends_on an epoch count "
                f"or by their name ({', '.join(sorted(EPOCH_LIST_NAMES))})."
            )
        if kind == "list_2" and (custom.get("depends_on") or leaf.get("depends_on")):
            raise SearchSpaceError(
                f"parameter '{name}': list_2 with depends_on is understood only for epoch lists (depends_on an epoch "
                f"count such as train.num_epochs), got depends_on {leaf.get('depends_on')!r}."
            )
        cond = self._cond(leaf, custom)
        self._no_dependency(leaf, custom, cond, "list")
        if minimum is None and maximum is None and custom.get("min") is None and custom.get("max") is None:
            raise SearchSpaceError(
                f"parameter '{name}' ({kind}) needs element bounds (minimum/maximum on the leaf or its items); TAO "
                "keeps them in per-network tables outside the schema, so give them in the schema or in "
                "custom_param_ranges."
            )
        ints = [v for v in (default or []) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        typical = max(ints) if ints else None
        result = resolve_numeric(
            name=name, is_int=True, default=typical,
            node_min=to_number(minimum, name=name, key="minimum"), node_max=to_number(maximum, name=name, key="maximum"),
            cond=cond, user_min=custom_number(custom, "min", name=name), user_max=custom_number(custom, "max", name=name),
            scale_hint="linear", multiple_of=cond.multiple_of,
        )
        if result.choices is not None:
            raise SearchSpaceError(f"parameter '{name}': '^ N' is not supported on list elements.")
        notes = [n for n in result.notes if not n.startswith("linear scale")]
        base: dict[str, Any] = dict(name=name, default=default, low=result.low, high=result.high, step=result.step,
                    condition=cond.text, tao_type=kind)
        if kind in ("list_1_backbone", "list_1_normal"):
            return Parameter(kind=ir.INT_RANGE_LIST, why=join_notes(["consecutive integers a..b inside the bounds", *notes]), **base)
        if kind == "list_3":
            length = len(default) if default else 2
            return Parameter(kind=ir.REPEATED_INT_LIST, length=length,
                             why=join_notes([f"one integer repeated {length} times", *notes]), **base)
        min_items, max_items = self._item_counts(leaf, default, fallback=(3, 6))
        return Parameter(kind=ir.SORTED_INT_LIST, min_items=min_items, max_items=max_items,
                         why=join_notes([f"{_count_text(min_items, max_items)} sorted integers", *notes]), **base)

    def _is_epoch_list(self, leaf: SchemaLeaf) -> bool:
        depends_on = leaf.get("depends_on")
        if isinstance(depends_on, str) and depends_on.rsplit(".", 1)[-1] in EPOCH_COUNT_NAMES:
            return True
        return leaf.path.rsplit(".", 1)[-1] in EPOCH_LIST_NAMES

    def _item_counts(self, leaf: SchemaLeaf, default: list | None, *, fallback: tuple[int, int]) -> tuple[int, int]:
        name = leaf.path
        raw_min = next((leaf.get(k) for k in ("x_min_items", "minItems", "min_items") if leaf.get(k) is not None), None)
        raw_max = next((leaf.get(k) for k in ("x_max_items", "maxItems", "max_items") if leaf.get(k) is not None), None)
        if raw_min is None and raw_max is None and default:
            return len(default), len(default)
        min_items = int(raw_min) if raw_min is not None else (min(fallback[0], int(raw_max)) if raw_max is not None else fallback[0])
        max_items = int(raw_max) if raw_max is not None else max(fallback[1], min_items)
        if not 0 <= min_items <= max_items:
            raise SearchSpaceError(f"parameter '{name}': list size bounds must satisfy 0 <= min <= max, got ({min_items}, {max_items}).")
        return min_items, max_items

    def epoch_list(self, leaf: SchemaLeaf, custom: Mapping[str, Any]) -> Parameter:
        name = leaf.path
        default = leaf.default if isinstance(leaf.default, list) else None
        parent = custom.get("depends_on") or leaf.get("depends_on") or epoch_parameter(self.info, name)
        if parent is None:
            raise SearchSpaceError(
                f"parameter '{name}' is an epoch list but the schema has no epoch count ({', '.join(EPOCH_COUNT_NAMES)}) "
                "to place it in; give depends_on."
            )
        searched, value = self.parent(name, parent, purpose="the epoch count its milestones live in")
        if not searched and (value < 1 or value != int(value)):
            raise SearchSpaceError(f"parameter '{name}': its epoch count '{parent}' = {value!r} is not a positive integer.")
        low, high = DEFAULT_EPOCH_FRACTIONS
        notes = []
        if custom.get("min") is not None or custom.get("max") is not None:
            custom_low, custom_high = custom_number(custom, "min", name=name), custom_number(custom, "max", name=name)
            low = custom_low if custom_low is not None else low
            high = custom_high if custom_high is not None else high
            if not 0 < low <= high < 1:
                raise SearchSpaceError(
                    f"parameter '{name}': for an epoch list, custom_param_ranges min/max are fractions of the epoch "
                    f"budget with 0 < min <= max < 1, got ({low}, {high})."
                )
            notes.append("fractions from custom_param_ranges")
        min_items, max_items = self._item_counts(leaf, default, fallback=(1, 3))
        if max_items == 0:
            raise SearchSpaceError(f"parameter '{name}': an epoch list needs room for at least one epoch.")
        where = f"{parent} (fixed at {value})" if not searched else parent
        return Parameter(
            name=name, kind=ir.EPOCH_LIST, default=default, low=low, high=high, min_items=min_items, max_items=max_items,
            parent=parent, relation=ir.EPOCHS, condition="inside [1, epoch budget - 1]",
            why=join_notes([
                f"{_count_text(min_items, max_items)} strictly increasing epochs at {low:g}-{high:g} of the trial's epoch budget "
                f"(else of {where}) so they fire under short budgets", *notes,
            ]),
            tao_type=leaf.type,
        )

    def float_list(self, leaf: SchemaLeaf, custom: Mapping[str, Any], minimum: list, maximum: list) -> Parameter:
        name = leaf.path
        if len(minimum) != len(maximum) or not minimum:
            raise SearchSpaceError(f"parameter '{name}': per-element minimum/maximum lists differ in length or are empty.")
        low = tuple(_element_bound(v, name=name, key="minimum") for v in minimum)
        high = tuple(_element_bound(v, name=name, key="maximum") for v in maximum)
        if not all(math.isfinite(v) for v in low + high):
            raise SearchSpaceError(f"parameter '{name}': per-element bounds must be finite, got {list(minimum)} / {list(maximum)}.")
        if custom.get("min") is not None or custom.get("max") is not None:
            user_low = tuple(custom.get("min") or low)
            user_high = tuple(custom.get("max") or high)
            if len(user_low) != len(low) or len(user_high) != len(high) or any(
                not (lo <= ul <= uh <= hi) for lo, ul, uh, hi in zip(low, user_low, user_high, high)
            ):
                raise SearchSpaceError(
                    f"parameter '{name}': custom_param_ranges min/max {list(user_low)} / {list(user_high)} must be "
                    f"per-element ranges inside the schema's {list(low)} / {list(high)}."
                )
            low, high = tuple(float(v) for v in user_low), tuple(float(v) for v in user_high)
        return Parameter(
            name=name, kind=ir.FLOAT_LIST, default=leaf.default, low=low, high=high,
            why=f"{len(low)} floats, each uniform in its own range", tao_type=leaf.type,
        )

    def subset(self, leaf: SchemaLeaf, custom: Mapping[str, Any]) -> Parameter:
        name = leaf.path
        choices, weights, notes = resolve_choices(
            leaf, custom, name=name, cast=lambda v: scalar_option(v, name=name), keep_zero_weights=True,
        )
        count = len(choices)
        if weights is None:
            inclusion = None
            notes.insert(0, "each option included with probability 0.5")
        else:
            inclusion = tuple(min(1.0, count / 2 * w) for w in weights)
            notes = [n for n in notes if not n.startswith("weighted draws")]
            notes.insert(0, "inclusion probabilities " + ", ".join(f"{c}: {p:.2f}" for c, p in zip(choices, inclusion)))
        min_items, _ = self._item_counts(leaf, None, fallback=(0, count))
        if min_items > count:
            raise SearchSpaceError(f"parameter '{name}': needs at least {min_items} of only {count} options.")
        if min_items:
            notes.append(f"topped up in option order to at least {min_items}")
        return Parameter(
            name=name, kind=ir.SUBSET_LIST, default=leaf.default, choices=choices, weights=inclusion,
            min_items=min_items, why=join_notes(notes), tao_type=leaf.type,
        )


def _element_bound(value: Any, *, name: str, key: str) -> float:
    """One element of a float list's per-element `minimum` / `maximum`: a number is required."""
    number = to_number(value, name=name, key=key)
    if number is None:
        raise SearchSpaceError(f"parameter '{name}': every element of its per-element {key} must be a number, "
                               f"got {value!r}.")
    return float(number)
