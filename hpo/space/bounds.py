"""Turn a numeric leaf's schema limits, `math_cond` and range hints into one finite search range.

The rules (each one leaves a note that ends up in the parameter's `why`):

1. *Limits* are the schema's `minimum`/`maximum` (inclusive) intersected with the bound terms of
   `math_cond` (`>`/`<` exclusive, `>=`/`<=` inclusive). Nothing outside them is ever sampled, and
   user ranges (`custom_param_ranges`) and our `x_search_range` hints must lie inside them.
2. The *search range* comes from the user's range, else the schema's `x_search_range` hint, else
   the limits themselves.
3. An exclusive zero lower bound (`> 0` on `[0, …]`) becomes a small positive bound:
   `min(default, high) / 1000` (three decades below the typical value) when the default is positive,
   else `high / 10**6`. Other exclusive float bounds move to the next representable float; integer
   ones move by one.
4. An infinite or missing maximum becomes `4 × default` when the default is positive (so never below
   the default), else `min + 4 × max(1, |min|)`. A missing minimum becomes `default / 4`. Without a
   usable default the parameter needs a user range, and the error says so.
5. `!= v`: integers step over `v` at a bound; a `v` strictly inside an integer range keeps the side
   holding the default. Floats treat `v` at a bound as exclusive and nudge an exact hit inside.
6. `/ N` (without `depends_on`): values are multiples of N (bounds rounded inwards);
   `^ N`: values are the powers N**k (k = 0, 1, …) inside the range (a finite choice set).
7. Scale: log when the range is positive and spans at least 2 decades, or the parameter is a
   learning rate or weight decay (`lr`, `*_lr`, `learning_rate`, `weight_decay`, …) with a positive
   range; integers only with step 1. A schema's `x_scale` hint or the user's `scale` wins.
   Log cannot combine with a step in Optuna, so a stepped range stays linear.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skillkit.errors import SearchSpaceError
from skillkit.math_cond import Bound, MathCond

ZERO_BOUND_FRACTION = 1e-3      # rule 3: default / 1000
ZERO_BOUND_NO_DEFAULT = 1e-6    # rule 3: high / 10**6
INFINITE_MAX_FACTOR = 4         # rule 4
LOG_DECADES = 2.0               # rule 7

_LR_NAMES = frozenset({"lr", "learning_rate", "base_lr", "min_lr", "max_lr", "lr_backbone", "weight_decay", "wd"})
_LR_SUFFIXES = ("_lr", "_learning_rate", "_weight_decay")


def is_rate_like(name: str) -> bool:
    """Learning rates and weight decays: quantities people tune in orders of magnitude."""
    last = name.rsplit(".", 1)[-1].lower()
    return last in _LR_NAMES or last.endswith(_LR_SUFFIXES)


def to_number(value: Any, *, name: str, key: str) -> float | None:
    """A bound from the schema: numbers, numeric strings and `Infinity`; None/"" mean "not given"."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null", "nan")):
        return None
    if isinstance(value, bool):
        raise SearchSpaceError(f"parameter '{name}': {key} must be a number, got {value!r}.")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return None
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("inf", "+inf", "infinity", "+infinity"):
            return math.inf
        if text in ("-inf", "-infinity"):
            return -math.inf
        try:
            return float(text)
        except ValueError:
            pass
    raise SearchSpaceError(f"parameter '{name}': {key} must be a number, got {value!r}.")


@dataclass
class NumericRange:
    """The outcome: either a range (low/high/step) or, for `^ N`, a finite set of `choices`."""

    low: float
    high: float
    scale: str = "linear"
    step: float | None = None
    choices: tuple[float, ...] | None = None
    excluded: tuple[float, ...] = ()
    limits_low: Bound | None = None
    limits_high: Bound | None = None
    notes: list[str] = field(default_factory=list)


def _tidy(value: float) -> float:
    """Six significant digits: derived bounds read as 2e-07, not 2.0000000000000002e-07."""
    return float(f"{value:.6g}")


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def limits_of(node_min: float | None, node_max: float | None, cond: MathCond, *, name: str) -> tuple[Bound | None, Bound | None]:
    """Rule 1: schema bounds intersected with the math_cond bounds (None = unbounded)."""
    low: Bound | None = None
    high: Bound | None = None
    if node_min is not None and node_min != -math.inf:
        low = Bound(node_min, True)
    if node_max is not None and node_max != math.inf:
        high = Bound(node_max, True)
    if cond.lower is not None and cond.lower.value != -math.inf:
        if low is None or cond.lower.value > low.value or (cond.lower.value == low.value and not cond.lower.inclusive):
            low = cond.lower
    if cond.upper is not None and cond.upper.value != math.inf:
        if high is None or cond.upper.value < high.value or (cond.upper.value == high.value and not cond.upper.inclusive):
            high = cond.upper
    if low is not None and high is not None:
        if low.value > high.value or (low.value == high.value and not (low.inclusive and high.inclusive)):
            raise SearchSpaceError(
                f"parameter '{name}': its schema limits allow no value (minimum/maximum {node_min}/{node_max}, "
                f"math_cond '{cond.text}')."
            )
    return low, high


def describe_limits(low: Bound | None, high: Bound | None) -> str:
    left = "(-inf" if low is None else ("[" if low.inclusive else "(") + _fmt(low.value)
    right = "inf)" if high is None else _fmt(high.value) + ("]" if high.inclusive else ")")
    return f"{left}, {right}"


def inside(value: float, low: Bound | None, high: Bound | None) -> bool:
    if low is not None and (value < low.value or (value == low.value and not low.inclusive)):
        return False
    if high is not None and (value > high.value or (value == high.value and not high.inclusive)):
        return False
    return True


def _check_inside(value: float, low: Bound | None, high: Bound | None, *, name: str, origin: str) -> None:
    if not math.isfinite(value) or not inside(value, low, high):
        raise SearchSpaceError(
            f"parameter '{name}': {origin} = {value!r} lies outside the schema's limits "
            f"{describe_limits(low, high)}; ranges may only narrow what the schema allows."
        )


def resolve_numeric(
    *,
    name: str,
    is_int: bool,
    default: Any,
    node_min: float | None,
    node_max: float | None,
    cond: MathCond,
    user_min: float | None = None,
    user_max: float | None = None,
    hint: tuple[float, float] | None = None,
    scale_hint: str | None = None,
    multiple_of: float | None = None,
) -> NumericRange:
    """Apply rules 1-7 to one int/float leaf."""
    lim_low, lim_high = limits_of(node_min, node_max, cond, name=name)
    notes: list[str] = []
    numeric_default = default if isinstance(default, (int, float)) and not isinstance(default, bool) and math.isfinite(default) else None

    # Rule 2: where the range comes from.
    hint_low = hint_high = None
    if hint is not None:
        hint_low, hint_high = hint
        _check_inside(hint_low, lim_low, lim_high, name=name, origin="the schema's x_search_range minimum")
        _check_inside(hint_high, lim_low, lim_high, name=name, origin="the schema's x_search_range maximum")
    if user_min is not None:
        _check_inside(user_min, lim_low, lim_high, name=name, origin="custom_param_ranges min")
    if user_max is not None:
        _check_inside(user_max, lim_low, lim_high, name=name, origin="custom_param_ranges max")

    # High first: the zero-bound rule for the low side needs it.
    high_notes: list[str] = []
    high_exclusive = False
    if user_max is not None:
        high = user_max
        high_notes.append(f"max {_fmt(high)} from custom_param_ranges")
    elif hint_high is not None:
        high = hint_high
        high_notes.append(f"max {_fmt(high)} from the schema's x_search_range")
    elif lim_high is not None:
        high = lim_high.value
        high_exclusive = not lim_high.inclusive
    else:
        base_low = user_min if user_min is not None else hint_low if hint_low is not None else (lim_low.value if lim_low else None)
        if numeric_default is not None and numeric_default > 0:
            high = _tidy(INFINITE_MAX_FACTOR * numeric_default)
            high_notes.append(f"max {_fmt(high)} = {INFINITE_MAX_FACTOR}x default {_fmt(numeric_default)} (schema maximum is unbounded)")
        elif base_low is not None:
            high = base_low + INFINITE_MAX_FACTOR * max(1.0, abs(base_low))
            high_notes.append(f"max {_fmt(high)} = min + {INFINITE_MAX_FACTOR}*max(1, |min|) (schema maximum unbounded, no positive default)")
        else:
            raise SearchSpaceError(
                f"parameter '{name}': the schema gives no finite maximum and no positive default "
                f"({default!r}) to derive one from; give custom_param_ranges {{'{name}': {{'max': ...}}}}."
            )
        if base_low is not None and high <= base_low:
            high = base_low * INFINITE_MAX_FACTOR if base_low > 0 else base_low + INFINITE_MAX_FACTOR
            high_notes.append(f"max raised to {_fmt(high)} to stay above the minimum")

    low_exclusive = False
    if user_min is not None:
        low = user_min
        notes.append(f"min {_fmt(low)} from custom_param_ranges")
    elif hint_low is not None:
        low = hint_low
        notes.append(f"min {_fmt(low)} from the schema's x_search_range")
    elif lim_low is not None:
        low = lim_low.value
        low_exclusive = not lim_low.inclusive
    else:
        if numeric_default is not None and numeric_default > 0:
            low = _tidy(numeric_default / INFINITE_MAX_FACTOR)
            notes.append(f"min {_fmt(low)} = default/{INFINITE_MAX_FACTOR} (schema minimum is unbounded)")
        else:
            raise SearchSpaceError(
                f"parameter '{name}': the schema gives no minimum and no positive default ({default!r}) "
                f"to derive one from; give custom_param_ranges {{'{name}': {{'min': ...}}}}."
            )

    if notes and high_notes and notes[-1].endswith(" from custom_param_ranges") and high_notes[0].endswith(" from custom_param_ranges"):
        notes[-1] = f"range [{_fmt(low)}, {_fmt(high)}] from custom_param_ranges"
    elif notes and high_notes and notes[-1].endswith("x_search_range") and high_notes[0].endswith("x_search_range"):
        notes[-1] = f"range [{_fmt(low)}, {_fmt(high)}] from the schema's x_search_range"
    else:
        notes.extend(high_notes)

    # Rule 3 (and rule 5 at the bounds).
    zero_replaced = False
    excluded = [v for v in cond.excluded if math.isfinite(v)]
    # Both ends are checked before either is dropped from the list: a one-value range [v, v] with v excluded
    # must end up with both ends exclusive (empty), not as [v, v] with v's exclusion forgotten.
    if low in excluded:
        low_exclusive = True
    if high in excluded:
        high_exclusive = True
    excluded = [v for v in excluded if v not in (low, high)]
    if is_int:
        low_i = math.floor(low) + 1 if low_exclusive and low == math.floor(low) else math.ceil(low)
        high_i = math.ceil(high) - 1 if high_exclusive and high == math.ceil(high) else math.floor(high)
        if low_exclusive:
            notes.append(f"min {low_i}: the bound {_fmt(low)} itself is excluded")
        if high_exclusive:
            notes.append(f"max {high_i}: the bound {_fmt(high)} itself is excluded")
        low, high = low_i, high_i
    else:
        if high_exclusive:
            high = math.nextafter(high, -math.inf)
            notes.append(f"max just below {_fmt(high)} (bound excluded)")
        if low_exclusive:
            if low == 0:
                zero_replaced = True
                if numeric_default is not None and numeric_default > 0:
                    low = _tidy(min(numeric_default, high) * ZERO_BOUND_FRACTION)
                    notes.append(f"min {_fmt(low)} = min(default, max)/1000 because 0 is excluded")
                else:
                    low = _tidy(high * ZERO_BOUND_NO_DEFAULT)
                    notes.append(f"min {_fmt(low)} = max/10^6 because 0 is excluded and there is no positive default")
            else:
                low = math.nextafter(low, math.inf)
                notes.append("min bound excluded (next float above it)")
    if low > high:
        raise SearchSpaceError(
            f"parameter '{name}': the search range is empty (min {_fmt(low)} > max {_fmt(high)}) after applying "
            f"math_cond '{cond.text}' to limits {describe_limits(lim_low, lim_high)}."
        )

    # Rule 5 inside the range.
    float_excluded: list[float] = []
    for value in sorted(set(excluded)):
        if not low <= value <= high:
            continue
        if is_int:
            if value != int(value):
                continue
            value = int(value)
            if value == low:
                low += 1
            elif value == high:
                high -= 1
            else:
                if numeric_default is not None and numeric_default != value:
                    keep_upper = numeric_default > value
                else:
                    keep_upper = high - value >= value - low
                if keep_upper:
                    low = value + 1
                else:
                    high = value - 1
                notes.append(f"range narrowed to [{low}, {high}]: the side of the excluded {value} holding the default")
        else:
            float_excluded.append(value)
            notes.append(f"an exact draw of {_fmt(value)} is nudged to the next float (!= {_fmt(value)})")

    result = NumericRange(low=low, high=high, excluded=tuple(float_excluded), limits_low=lim_low, limits_high=lim_high, notes=notes)

    # Rule 6.
    if cond.power_of is not None:
        result.choices = _powers(cond.power_of, low, high, is_int=is_int, excluded=cond.excluded, multiple_of=multiple_of, name=name)
        notes.append(f"powers of {_fmt(cond.power_of)} in [{_fmt(low)}, {_fmt(high)}]")
        return result
    if multiple_of is not None:
        if is_int and multiple_of != int(multiple_of):
            raise SearchSpaceError(f"parameter '{name}': an integer cannot be a multiple of {multiple_of}.")
        step = int(multiple_of) if is_int else multiple_of
        aligned_low = math.ceil(low / step - 1e-9) * step
        aligned_high = math.floor(high / step + 1e-9) * step
        if is_int:
            while aligned_low in cond.excluded and aligned_low <= aligned_high:
                aligned_low += step
            while aligned_high in cond.excluded and aligned_high >= aligned_low:
                aligned_high -= step
        else:
            aligned_low, aligned_high = round(aligned_low, 12), round(aligned_high, 12)
            if not inside(aligned_low, lim_low, None):
                aligned_low += step
        if aligned_low > aligned_high:
            raise SearchSpaceError(
                f"parameter '{name}': no multiple of {_fmt(step)} lies in [{_fmt(low)}, {_fmt(high)}] (math_cond '{cond.text}')."
            )
        result.low, result.high, result.step = aligned_low, aligned_high, step
        notes.append(f"multiples of {_fmt(step)}")
    if is_int:
        result.low, result.high = int(result.low), int(result.high)

    # Rule 7.
    result.scale = _choose_scale(name, result, is_int=is_int, scale_hint=scale_hint, notes=notes, zero_replaced=zero_replaced)
    return result


def _powers(base: float, low: float, high: float, *, is_int: bool, excluded: tuple[float, ...],
            multiple_of: float | None, name: str) -> tuple[float, ...]:
    """N**k for k = 0, 1, 2, ... inside [low, high] (the spec validator's meaning of `^ N`)."""
    values: list[float] = []
    power = 1
    while power <= high:
        if power >= low and power not in excluded:
            if multiple_of is None or power % multiple_of == 0:
                values.append(power if is_int else float(power))
        power *= int(base)
    if not values:
        raise SearchSpaceError(
            f"parameter '{name}': no power of {_fmt(base)} (1, {_fmt(base)}, {_fmt(base * base)}, ...) lies in "
            f"[{_fmt(low)}, {_fmt(high)}]."
        )
    return tuple(values)


def _choose_scale(name: str, rng: NumericRange, *, is_int: bool, scale_hint: str | None, notes: list[str],
                  zero_replaced: bool = False) -> str:
    """Rule 7. A lower bound that only exists because 0 was excluded does not make the range "span
    decades": momentum on (0, 1] stays linear, a learning rate on (0, 1] goes log."""
    if scale_hint is not None:
        if scale_hint not in ("log", "linear"):
            raise SearchSpaceError(f"parameter '{name}': scale must be 'log' or 'linear', got {scale_hint!r}.")
        if scale_hint == "log" and rng.low <= 0:
            raise SearchSpaceError(f"parameter '{name}': a log scale needs a positive range, got min {rng.low}.")
        if scale_hint == "log" and rng.step not in (None, 1):
            raise SearchSpaceError(f"parameter '{name}': a log scale cannot combine with multiples of {rng.step}.")
        notes.insert(0, f"{scale_hint} scale (explicit)")
        return scale_hint
    if rng.low <= 0 or rng.high <= rng.low:
        notes.insert(0, "linear scale: range reaches 0 or below" if rng.low <= 0 else "single value")
        return "linear"
    decades = math.log10(rng.high / rng.low)
    spans = decades >= LOG_DECADES and not zero_replaced
    wants_log = spans or (not is_int and is_rate_like(name))
    if not wants_log:
        if zero_replaced:
            notes.insert(0, "linear scale: the range starts at 0 (excluded)")
        else:
            notes.insert(0, f"linear scale: range spans {decades:.1f} decades (< {LOG_DECADES:g})")
        return "linear"
    if rng.step is not None and (not is_int or rng.step != 1):
        notes.append(f"linear although the range spans {decades:.1f} decades: Optuna cannot combine log with a step")
        return "linear"
    reason = f"range spans {decades:.1f} decades" if spans else "learning rate / weight decay"
    if spans and not is_int and is_rate_like(name):
        reason = f"learning rate / weight decay, range spans {decades:.1f} decades"
    notes.insert(0, f"log scale: {reason}")
    return "log"


def custom_number(custom: Mapping[str, Any], key: str, *, name: str) -> float | None:
    if key not in custom or custom[key] is None:
        return None
    value = to_number(custom[key], name=name, key=f"custom_param_ranges {key}")
    if value is None or not math.isfinite(value):
        raise SearchSpaceError(f"parameter '{name}': custom_param_ranges {key} must be a finite number, got {custom[key]!r}.")
    return value
