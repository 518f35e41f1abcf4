"""Field constructors that attach TAO schema metadata to dataclass fields.

The dataclasses in this package are the single source of truth for the skill's schemas and spec
templates: `hpo schemas generate` reads `dataclasses.fields(...)` and each field's
`metadata["tao"]` dict (plain data, so the generator needs no import of this package's types).

Keys of the metadata dict mirror the TAO schema leaf keys (DESIGN.md §4): `type`, `title`,
`description`, `minimum`, `maximum`, `enum`, `option_weights`, `math_cond`, `depends_on`,
`parent_param`, `automl_enabled`, `popular`, `required`, `pattern`, plus our own `x_` hints
(`x_search_range`: the practical range AutoML searches when the schema's validation bounds are far
wider than anyone would train with; `x_secret`: never log this value; `x_pbt: hot`: the value may change
in the middle of a training run, see below).

Hot or cold (`pbt="hot"`): population-based training perturbs a trial's parameters and continues from a
checkpoint. Only a HOT parameter may change then: one the resumed run reads afresh from the spec without
touching the checkpoint's shapes or the data's meaning (optimiser and schedule settings, loss weights,
regularisation). Everything else is COLD, and cold is the default: a field without the mark (architecture,
data sizes, any parameter made searchable later) is never perturbed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

INF = math.inf

# TAO leaf type names used by the generated schemas.
TAO_INT = "int"
TAO_FLOAT = "float"
TAO_BOOL = "bool"
TAO_STRING = "string"
TAO_CATEGORICAL = "categorical"
TAO_LIST = "list"
TAO_COLLECTION = "collection"
TAO_DICT = "dict"


PBT_MARKS = ("hot",)


def _metadata(type_name: str, title: str, description: str, **extra: Any) -> dict[str, Any]:
    if extra.get("x_pbt") not in (None, *PBT_MARKS):
        raise ValueError(f"pbt={extra['x_pbt']!r} of {title!r}: only 'hot' marks a field (unmarked is cold)")
    meta: dict[str, Any] = {"type": type_name, "title": title, "description": " ".join(description.split())}
    for key, value in extra.items():
        if value is None or value is False and key in ("automl_enabled", "popular", "required", "x_secret"):
            continue
        meta[key] = list(value) if isinstance(value, tuple) else value
    return meta


def _field(default: Any, meta: dict[str, Any]) -> Any:
    if isinstance(default, (list, dict)):
        frozen = list(default) if isinstance(default, list) else dict(default)
        factory: Callable[[], Any] = (lambda: list(frozen)) if isinstance(frozen, list) else (lambda: dict(frozen))
        return dataclasses.field(default_factory=factory, metadata={"tao": meta})
    return dataclasses.field(default=default, metadata={"tao": meta})


def int_field(
    default: int | None,
    *,
    title: str,
    description: str,
    minimum: float | None = None,
    maximum: float | None = None,
    math_cond: str | None = None,
    depends_on: str | None = None,
    automl_enabled: bool = False,
    popular: bool = False,
    x_search_range: Sequence[float] | None = None,
    pbt: str | None = None,
) -> Any:
    """An integer leaf (TAO type `int`)."""
    return _field(
        default,
        _metadata(
            TAO_INT, title, description, minimum=minimum, maximum=maximum, math_cond=math_cond,
            depends_on=depends_on, automl_enabled=automl_enabled, popular=popular,
            x_search_range=x_search_range, x_pbt=pbt,
        ),
    )


def float_field(
    default: float | None,
    *,
    title: str,
    description: str,
    minimum: float | None = None,
    maximum: float | None = None,
    math_cond: str | None = None,
    depends_on: str | None = None,
    automl_enabled: bool = False,
    popular: bool = False,
    x_search_range: Sequence[float] | None = None,
    pbt: str | None = None,
) -> Any:
    """A float leaf (TAO type `float`)."""
    return _field(
        default,
        _metadata(
            TAO_FLOAT, title, description, minimum=minimum, maximum=maximum, math_cond=math_cond,
            depends_on=depends_on, automl_enabled=automl_enabled, popular=popular,
            x_search_range=x_search_range, x_pbt=pbt,
        ),
    )


def bool_field(default: bool, *, title: str, description: str, automl_enabled: bool = False,
               popular: bool = False, pbt: str | None = None) -> Any:
    """A boolean leaf (TAO type `bool`)."""
    return _field(default, _metadata(TAO_BOOL, title, description, automl_enabled=automl_enabled, popular=popular,
                                     x_pbt=pbt))


def str_field(
    default: str,
    *,
    title: str,
    description: str,
    pattern: str | None = None,
    required: bool = False,
    secret: bool = False,
    popular: bool = False,
) -> Any:
    """A free-text leaf (TAO type `string`); `"???"` as default marks a value an action must be given."""
    return _field(
        default,
        _metadata(TAO_STRING, title, description, pattern=pattern, required=required, x_secret=secret,
                  popular=popular),
    )


def enum_field(
    default: str,
    options: Sequence[str],
    *,
    title: str,
    description: str,
    option_weights: Sequence[float] | None = None,
    automl_enabled: bool = False,
    popular: bool = False,
    pbt: str | None = None,
) -> Any:
    """A categorical leaf (TAO type `categorical`) with its allowed options."""
    if default not in options:
        raise ValueError(f"default {default!r} of {title!r} is not one of {list(options)}")
    return _field(
        default,
        _metadata(TAO_CATEGORICAL, title, description, enum=list(options), option_weights=option_weights,
                  automl_enabled=automl_enabled, popular=popular, x_pbt=pbt),
    )


def list_field(
    default: list[Any],
    *,
    title: str,
    description: str,
    item_type: str | None = None,
    min_items: int | None = None,
    max_items: int | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    options: Sequence[Any] | None = None,
    kind: str = TAO_LIST,
    automl_enabled: bool = False,
    popular: bool = False,
) -> Any:
    """A list leaf (TAO type `list` or one of TAO's list kinds); item constraints go in `x_items`."""
    items: dict[str, Any] = {}
    if item_type:
        items["type"] = item_type
    if minimum is not None:
        items["minimum"] = minimum
    if maximum is not None:
        items["maximum"] = maximum
    if options is not None:
        items["enum"] = list(options)
    return _field(
        list(default),
        _metadata(kind, title, description, x_items=items or None, x_min_items=min_items,
                  x_max_items=max_items, automl_enabled=automl_enabled, popular=popular),
    )


def dict_field(default: dict[str, Any], *, title: str, description: str) -> Any:
    """A free-form mapping (TAO writes these as `collection` without properties)."""
    return _field(dict(default), _metadata(TAO_COLLECTION, title, description, x_free_form=True))


def section(factory: Callable[[], Any], *, title: str, description: str, required: bool = False) -> Any:
    """A nested dataclass (TAO type `collection`)."""
    return dataclasses.field(
        default_factory=factory,
        metadata={"tao": _metadata(TAO_COLLECTION, title, description, required=required)},
    )
