"""Parse TAO `math_cond` strings into a structured condition.

TAO writes constraints on a leaf as a short string. The forms seen in real TAO schemas are
`> 0`, `>0`, `> 0.0`, `>= 0`, `>= 1`, `!= 0`, compound bounds such as `> 0.0 <= 1.0`, `/ N`, `^ N`
and the relational forms `> depends_on`, `>= depends_on`, `< depends_on`, `<= depends_on`.
A condition is a sequence of `<operator> <operand>` terms; every term must hold (they combine with
"and"). Parsing is strict: anything we cannot read is a `SearchSpaceError` naming the parameter,
because silently ignoring a constraint is how TAO's own sampler ended up drawing `lr = 0`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from skillkit.errors import SearchSpaceError

RELATIONS = (">", ">=", "<", "<=")

_TERM = re.compile(
    r"\s*(?P<op>>=|<=|!=|>|<|/|\^)\s*"
    r"(?P<arg>depends_on|[-+]?(?:inf(?:inity)?|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Bound:
    """One side of an interval: `value` and whether the value itself is allowed."""

    value: float
    inclusive: bool


@dataclass(frozen=True)
class MathCond:
    """A parsed `math_cond`.

    `lower`/`upper`: the tightest numeric bounds the terms give (None when absent);
    `excluded`: values ruled out by `!=`; `multiple_of`: `/ N`; `power_of`: `^ N`;
    `relation`: the operator of a `<op> depends_on` term (the parent is the leaf's `depends_on`).
    """

    text: str
    lower: Bound | None = None
    upper: Bound | None = None
    excluded: tuple[float, ...] = ()
    multiple_of: float | None = None
    power_of: float | None = None
    relation: str | None = None
    terms: tuple[tuple[str, str], ...] = field(default=())

    @property
    def is_empty(self) -> bool:
        return not self.terms

    def holds(self, value: float, *, check_multiple: bool = True) -> bool:
        """Whether `value` satisfies the static part (bounds, `!=`, `/ N`, `^ N`) of the condition.

        `/ N` together with a `depends_on` parent means "derived from the parent", which the caller
        checks instead, so it passes `check_multiple=False` there.
        """
        if self.lower is not None:
            if value < self.lower.value or (value == self.lower.value and not self.lower.inclusive):
                return False
        if self.upper is not None:
            if value > self.upper.value or (value == self.upper.value and not self.upper.inclusive):
                return False
        if value in self.excluded:
            return False
        if check_multiple and self.multiple_of is not None and not is_multiple(value, self.multiple_of):
            return False
        if self.power_of is not None and not is_power(value, self.power_of):
            return False
        return True


def is_multiple(value: float, factor: float) -> bool:
    """`value` is an integer multiple of `factor` (tolerant of float rounding)."""
    quotient = value / factor
    return math.isclose(quotient, round(quotient), rel_tol=1e-9, abs_tol=1e-9)


def is_power(value: float, base: float) -> bool:
    """`value` equals `base ** k` for some integer `k` (k may be negative for fractional values)."""
    if value <= 0:
        return False
    exponent = math.log(value) / math.log(base)
    nearest = round(exponent)
    return math.isclose(value, base**nearest, rel_tol=1e-9)


def _number(text: str) -> float:
    lowered = text.lower().lstrip("+")
    if lowered in ("inf", "infinity"):
        return math.inf
    if lowered in ("-inf", "-infinity"):
        return -math.inf
    return float(text)


def _tighter_lower(current: Bound | None, new: Bound) -> Bound:
    if current is None or new.value > current.value:
        return new
    if new.value == current.value:
        return Bound(new.value, current.inclusive and new.inclusive)
    return current


def _tighter_upper(current: Bound | None, new: Bound) -> Bound:
    if current is None or new.value < current.value:
        return new
    if new.value == current.value:
        return Bound(new.value, current.inclusive and new.inclusive)
    return current


def parse_math_cond(text: object, *, name: str) -> MathCond:
    """Parse `text` (a TAO `math_cond`) for parameter `name`; empty/None gives an empty condition."""
    if text is None:
        return MathCond(text="")
    if not isinstance(text, str):
        raise SearchSpaceError(
            f"parameter '{name}': math_cond must be a string such as '> 0' or '/ 8', got {text!r}."
        )
    stripped = text.strip()
    if not stripped:
        return MathCond(text="")
    position = 0
    terms: list[tuple[str, str]] = []
    while position < len(stripped):
        match = _TERM.match(stripped, position)
        if match is None:
            raise SearchSpaceError(
                f"parameter '{name}': cannot read math_cond {text!r} at {stripped[position:]!r}; "
                "allowed terms are '> x', '>= x', '< x', '<= x', '!= x', '/ N', '^ N' and "
                "'<op> depends_on' (terms combine with 'and', e.g. '> 0.0 <= 1.0')."
            )
        terms.append((match.group("op"), match.group("arg")))
        position = match.end()
        while position < len(stripped) and stripped[position] in " \t,;&":
            position += 1

    lower: Bound | None = None
    upper: Bound | None = None
    excluded: list[float] = []
    multiple_of: float | None = None
    power_of: float | None = None
    relation: str | None = None
    for op, arg in terms:
        if arg.lower() == "depends_on":
            if op not in RELATIONS:
                raise SearchSpaceError(
                    f"parameter '{name}': math_cond {text!r} uses '{op} depends_on'; only "
                    "'>', '>=', '<' and '<=' can compare with the depends_on parameter."
                )
            if relation is not None and relation != op:
                raise SearchSpaceError(
                    f"parameter '{name}': math_cond {text!r} compares with depends_on twice "
                    f"('{relation}' and '{op}'); give one relation."
                )
            relation = op
            continue
        number = _number(arg)
        if op in ("/", "^"):
            if not math.isfinite(number) or number <= 0:
                raise SearchSpaceError(
                    f"parameter '{name}': math_cond {text!r} needs a positive finite number after '{op}', "
                    f"got {arg!r}."
                )
            if op == "/":
                if number != int(number):
                    raise SearchSpaceError(
                        f"parameter '{name}': math_cond {text!r}: '/ N' needs a whole number N, got {arg!r}."
                    )
                if multiple_of is not None and multiple_of != number:
                    number = float(math.lcm(int(multiple_of), int(number)))
                multiple_of = number
            else:
                if number < 2 or number != int(number):
                    raise SearchSpaceError(
                        f"parameter '{name}': math_cond {text!r}: '^ N' needs an integer base N >= 2, got {arg!r}."
                    )
                if power_of is not None and power_of != number:
                    raise SearchSpaceError(
                        f"parameter '{name}': math_cond {text!r} asks for powers of two different bases."
                    )
                power_of = number
            continue
        if math.isnan(number):
            raise SearchSpaceError(f"parameter '{name}': math_cond {text!r} compares with NaN.")
        if op == ">":
            lower = _tighter_lower(lower, Bound(number, False))
        elif op == ">=":
            lower = _tighter_lower(lower, Bound(number, True))
        elif op == "<":
            upper = _tighter_upper(upper, Bound(number, False))
        elif op == "<=":
            upper = _tighter_upper(upper, Bound(number, True))
        else:  # "!="
            excluded.append(number)
    if lower is not None and upper is not None:
        empty = lower.value > upper.value or (
            lower.value == upper.value and not (lower.inclusive and upper.inclusive)
        )
        if empty:
            raise SearchSpaceError(
                f"parameter '{name}': math_cond {text!r} allows no value at all."
            )
    return MathCond(
        text=stripped,
        lower=lower,
        upper=upper,
        excluded=tuple(sorted(set(excluded))),
        multiple_of=multiple_of,
        power_of=power_of,
        relation=relation,
        terms=tuple(terms),
    )


def combine(first: MathCond, second: MathCond, *, name: str) -> MathCond:
    """Both conditions must hold (a user's `math_cond` narrows the schema's, never replaces it)."""
    if first.is_empty:
        return second
    if second.is_empty:
        return first
    return parse_math_cond(f"{first.text} {second.text}", name=name)
