"""Why a value breaks a TAO `math_cond`, for spec validation messages.

Parsing is the search-space compiler's (`skillkit.math_cond`), so validation and sampling read every
condition the same way; this module only turns a parsed condition into human-readable reasons.
Meanings (DESIGN.md §4): `>`/`<` exclusive, `>=`/`<=` inclusive, combinable; `!= a`; `/ N` a multiple
of N (with `depends_on`: the parent's value // N); `^ N` a power of N; `<op> depends_on` relative to
the parent's value.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from skillkit.errors import SchemaError, SearchSpaceError
from skillkit.math_cond import MathCond, is_multiple, is_power
from skillkit.math_cond import parse_math_cond as _parse

RELATIONS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}


@lru_cache(maxsize=512)
def parse_math_cond(text: str, name: str = "math_cond") -> MathCond:
    """Parse a condition; an unreadable one is a SchemaError (the schema, not the spec, is at fault)."""
    try:
        return _parse(text, name=name)
    except SearchSpaceError as error:
        raise SchemaError(str(error)) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def static_violations(cond: MathCond, value: Any, *, has_parent: bool) -> list[str]:
    """Reasons `value` breaks the parts of `cond` that need no other parameter."""
    if not _is_number(value):
        return []
    problems = []
    if cond.lower is not None:
        ok = value >= cond.lower.value if cond.lower.inclusive else value > cond.lower.value
        if not ok:
            problems.append(f"must be {'>=' if cond.lower.inclusive else '>'} {cond.lower.value:g}")
    if cond.upper is not None:
        ok = value <= cond.upper.value if cond.upper.inclusive else value < cond.upper.value
        if not ok:
            problems.append(f"must be {'<=' if cond.upper.inclusive else '<'} {cond.upper.value:g}")
    for excluded in cond.excluded:
        if value == excluded:
            problems.append(f"must not be {excluded:g}")
    if cond.multiple_of is not None and not has_parent and not is_multiple(value, cond.multiple_of):
        problems.append(f"must be a multiple of {cond.multiple_of:g}")
    if cond.power_of is not None and not is_power(value, cond.power_of):
        problems.append(f"must be a power of {cond.power_of:g}")
    return problems


def relative_violations(cond: MathCond, value: Any, parent_value: Any) -> list[str]:
    """Reasons `value` breaks the parts of `cond` relative to its `depends_on` parent's value."""
    if not (_is_number(value) and _is_number(parent_value)):
        return []
    problems = []
    if cond.multiple_of is not None:
        expected = int(parent_value) // int(cond.multiple_of)
        if value != expected:
            problems.append(f"must equal the parent's value {parent_value} // {cond.multiple_of:g} = {expected}")
    if cond.relation and not RELATIONS[cond.relation](value, parent_value):
        problems.append(f"must be {cond.relation} its parent's value {parent_value}")
    return problems
