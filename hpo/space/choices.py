"""Options and option weights of categorical-like leaves (`categorical`, `ordered`, `ordered_int`,
`bool`, enum-valued numbers and strings, subset/optional lists).

Options come from `enum`, TAO's `valid_options` (a list or a comma-separated string) or an item
schema's `enum`. `option_weights` is a list aligned with the options or a mapping option → weight.
Weights are relative (normalised here); an option with weight 0 is never drawn and is removed from
the choices. A user's `options` must be a subset of the schema's; a user's `weights` replace the
schema's, otherwise the schema's weights of the kept options are renormalised.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hpo.space.reader import SchemaLeaf, as_bool
from skillkit.errors import SearchSpaceError


def _as_list(raw: Any) -> list[Any] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(raw, (list, tuple)):
        return list(raw)
    return None


def schema_options(leaf: SchemaLeaf) -> list[Any] | None:
    """The leaf's allowed options, wherever the schema put them (None when it lists none)."""
    for source in (leaf.get("enum"), leaf.get("valid_options")):
        options = _as_list(source)
        if options:
            return options
    for key in ("items", "x_items"):
        items = leaf.get(key)
        if isinstance(items, Mapping):
            options = _as_list(items.get("enum"))
            if options:
                return options
    return None


def cast_int(value: Any, *, name: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SearchSpaceError(f"parameter '{name}': option {value!r} is not an integer.") from None
    if isinstance(value, bool) or not math.isfinite(number) or number != int(number):
        raise SearchSpaceError(f"parameter '{name}': option {value!r} is not an integer.")
    return int(number)


def cast_float(value: Any, *, name: str) -> float | int:
    if isinstance(value, bool):
        raise SearchSpaceError(f"parameter '{name}': option {value!r} is not a number.")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SearchSpaceError(f"parameter '{name}': option {value!r} is not a number.") from None
    if not math.isfinite(number):
        raise SearchSpaceError(f"parameter '{name}': option {value!r} is not a finite number.")
    return number


def cast_bool(value: Any, *, name: str) -> bool:
    result = as_bool(value, name=name, key="option")
    if result is None:
        raise SearchSpaceError(f"parameter '{name}': option {value!r} is not a boolean.")
    return result


def _weights_for(raw: Any, options: Sequence[Any], *, name: str, origin: str) -> list[float] | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        by_text = {str(key).lower(): value for key, value in raw.items()}
        unknown = sorted(set(by_text) - {str(option).lower() for option in options})
        if unknown:
            raise SearchSpaceError(
                f"parameter '{name}': {origin} names options {unknown} that are not among {list(options)}."
            )
        values = [by_text.get(str(option).lower(), 0.0) for option in options]
    else:
        listed = _as_list(raw)
        if listed is None:
            raise SearchSpaceError(f"parameter '{name}': {origin} must be a list or a mapping, got {raw!r}.")
        values = listed
        if len(values) != len(options):
            raise SearchSpaceError(
                f"parameter '{name}': {origin} has {len(values)} entries for {len(options)} options {list(options)}."
            )
    weights: list[float] = []
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise SearchSpaceError(f"parameter '{name}': {origin} entry {value!r} is not a number.") from None
        if isinstance(value, bool) or not math.isfinite(number) or number < 0:
            raise SearchSpaceError(f"parameter '{name}': {origin} entry {value!r} must be a finite number >= 0.")
        weights.append(number)
    if sum(weights) <= 0:
        raise SearchSpaceError(f"parameter '{name}': {origin} {list(values)} gives every option weight 0.")
    return weights


def resolve_choices(
    leaf: SchemaLeaf,
    custom: Mapping[str, Any],
    *,
    name: str,
    cast: Callable[[Any], Any],
    fallback: Sequence[Any] | None = None,
    accept: Callable[[Any], str | None] | None = None,
    keep_zero_weights: bool = False,
) -> tuple[tuple[Any, ...], tuple[float, ...] | None, list[str]]:
    """Choices, normalised weights (None = uniform) and notes for `why`.

    `cast` converts raw options to the parameter's value type; `fallback` is used when the schema lists
    no options (e.g. bool → (False, True)); `accept` vets user options of open-ended numeric leaves
    (returns an error text or None).
    """
    notes: list[str] = []
    raw_options = schema_options(leaf)
    base = [cast(option) for option in raw_options] if raw_options else (list(fallback) if fallback is not None else None)
    base_weights = _weights_for(leaf.get("option_weights"), base, name=name, origin="option_weights") if base is not None else None
    if base is not None:
        deduped: list[Any] = []
        for option in base:
            if option not in deduped:
                deduped.append(option)
        if len(deduped) != len(base):
            raise SearchSpaceError(f"parameter '{name}': options {base} repeat a value.")
    options = base
    weights = base_weights
    if custom.get("options") is not None:
        wanted = _as_list(custom["options"])
        if not wanted:
            raise SearchSpaceError(f"parameter '{name}': custom_param_ranges options must be a non-empty list.")
        wanted = [cast(option) for option in wanted]
        if base is not None:
            outside = [option for option in wanted if option not in base]
            if outside:
                raise SearchSpaceError(
                    f"parameter '{name}': custom_param_ranges options {outside} are not allowed by the schema "
                    f"(allowed: {base})."
                )
            weights = [base_weights[base.index(option)] for option in wanted] if base_weights else None
            if weights is not None and sum(weights) <= 0:
                raise SearchSpaceError(f"parameter '{name}': the schema gives every chosen option weight 0.")
        elif accept is not None:
            for option in wanted:
                problem = accept(option)
                if problem:
                    raise SearchSpaceError(f"parameter '{name}': custom_param_ranges option {option!r} {problem}.")
        options = wanted
        notes.append("options from custom_param_ranges")
    if options is None or not options:
        raise SearchSpaceError(f"parameter '{name}': no options to choose from (the schema lists none).")
    if custom.get("weights") is not None:
        weights = _weights_for(custom["weights"], options, name=name, origin="custom_param_ranges weights")
        notes.append("weights from custom_param_ranges")
    if weights is None:
        return tuple(options), None, notes
    if not keep_zero_weights and any(w == 0 for w in weights):
        dropped = [option for option, w in zip(options, weights) if w == 0]
        notes.append(f"weight 0 drops {dropped}")
        options, weights = [o for o, w in zip(options, weights) if w > 0], [w for w in weights if w > 0]
    total = sum(weights)
    probabilities = tuple(w / total for w in weights)
    if all(math.isclose(p, probabilities[0]) for p in probabilities):
        return tuple(options), None, notes
    notes.append("weighted draws " + ", ".join(f"{o}: {p:.2f}" for o, p in zip(options, probabilities)))
    return tuple(options), probabilities, notes


def scalar_option(value: Any, *, name: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise SearchSpaceError(f"parameter '{name}': option {value!r} is not a scalar (bool, number, string or null).")
