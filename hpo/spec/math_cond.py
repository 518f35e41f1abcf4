"""Parse and check TAO `math_cond` strings.

Forms seen in TAO schemas and what they mean here (DESIGN.md §4):
- `> a`, `>= a`, `< b`, `<= b`, combinable (`> 0.0 <= 1.0`): bounds, exclusive for `>`/`<`;
- `!= a`: the value may not be a;
- `/ N`: a multiple of N; with `depends_on`, the value IS the parent's value // N;
- `^ N`: a power of N (N**k, k >= 0);
- `> depends_on` (and `>=`, `<`, `<=`): relative to the parent parameter's value.
Spaces are optional (`>0` == `> 0`).
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable

from hpo.errors import SchemaError

_TOKEN = re.compile(r"\s*(>=|<=|!=|==|>|<|/|\^)\s*([^\s<>=!/^]+)")
RELATIONS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}


@dataclass(frozen=True)
class MathCondition:
    """A parsed condition; every part is optional."""

    text: str
    lower: float | None = None
    lower_inclusive: bool = True
    upper: float | None = None
    upper_inclusive: bool = True
    not_equal: tuple[float, ...] = ()
    multiple_of: int | None = None
    power_of: int | None = None
    relation: str | None = None  # one of RELATIONS, against the depends_on parent

    def violations(self, value: Any, *, parent_value: Any = None, has_parent: bool = False) -> list[str]:
        """Human-readable reasons `value` breaks the condition (empty when it holds)."""
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return []
        problems: list[str] = []
        if self.lower is not None:
            ok = value >= self.lower if self.lower_inclusive else value > self.lower
            if not ok:
                problems.append(f"must be {'>=' if self.lower_inclusive else '>'} {self.lower:g}")
        if self.upper is not None:
            ok = value <= self.upper if self.upper_inclusive else value < self.upper
            if not ok:
                problems.append(f"must be {'<=' if self.upper_inclusive else '<'} {self.upper:g}")
        for excluded in self.not_equal:
            if value == excluded:
                problems.append(f"must not be {excluded:g}")
        if self.multiple_of:
            if has_parent and parent_value is not None:
                expected = int(parent_value) // self.multiple_of
                if value != expected:
                    problems.append(f"must equal the parent's value {parent_value} // {self.multiple_of} = {expected}")
            elif not float(value).is_integer() or int(value) % self.multiple_of:
                problems.append(f"must be a multiple of {self.multiple_of}")
        if self.power_of and not is_power_of(value, self.power_of):
            problems.append(f"must be a power of {self.power_of}")
        if self.relation and has_parent and parent_value is not None and isinstance(parent_value, (int, float)):
            if not RELATIONS[self.relation](value, parent_value):
                problems.append(f"must be {self.relation} its parent's value {parent_value}")
        return problems


def is_power_of(value: float, base: int) -> bool:
    if value <= 0 or not float(value).is_integer():
        return False
    value = int(value)
    while value % base == 0 and value > 1:
        value //= base
    return value == 1


def _number(text: str, condition: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SchemaError(f"math_cond '{condition}': '{text}' is not a number or 'depends_on'.") from None


def parse_math_cond(text: str) -> MathCondition:
    """Parse one `math_cond` string; an unreadable one is a SchemaError quoting it."""
    source = str(text).strip()
    position = 0
    parts: dict[str, Any] = {"not_equal": []}
    for match in _TOKEN.finditer(source):
        if match.start() != position:
            break
        position = match.end()
        op, operand = match.group(1), match.group(2)
        if operand == "depends_on":
            if op not in RELATIONS:
                raise SchemaError(f"math_cond '{source}': '{op} depends_on' is not a supported relation (use >, >=, <, <=).")
            parts["relation"] = op
        elif op in (">", ">="):
            parts["lower"], parts["lower_inclusive"] = _number(operand, source), op == ">="
        elif op in ("<", "<="):
            parts["upper"], parts["upper_inclusive"] = _number(operand, source), op == "<="
        elif op == "!=":
            parts["not_equal"].append(_number(operand, source))
        elif op == "==":
            number = _number(operand, source)
            parts["lower"], parts["upper"] = number, number
        elif op in ("/", "^"):
            number = _number(operand, source)
            if not number.is_integer() or number < 2:
                raise SchemaError(f"math_cond '{source}': '{op} {operand}' needs an integer of at least 2.")
            parts["multiple_of" if op == "/" else "power_of"] = int(number)
    if position != len(source) or not source:
        raise SchemaError(
            f"math_cond '{source}' is not understood; allowed forms: '> a', '>= a', '< b', '<= b' (combinable), "
            "'!= a', '/ N', '^ N', '> depends_on' (and >=, <, <=)."
        )
    parts["not_equal"] = tuple(parts["not_equal"])
    if parts.get("lower") is not None and math.isinf(parts["lower"]):
        parts["lower"] = None
    return MathCondition(text=source, **parts)
