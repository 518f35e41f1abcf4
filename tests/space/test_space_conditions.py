"""math_cond parsing: every form TAO writes, and clear errors for anything else."""

from __future__ import annotations

import math

import pytest

from skillkit.errors import SearchSpaceError
from skillkit.math_cond import Bound, combine, is_power, parse_math_cond


@pytest.mark.parametrize(
    "text, lower",
    [("> 0", Bound(0, False)), (">0", Bound(0, False)), ("> 0.0", Bound(0.0, False)),
     (">= 0", Bound(0, True)), (">=0", Bound(0, True)), (">= 1", Bound(1, True)), (">-1.5", Bound(-1.5, False))],
)
def test_lower_bound_forms(text, lower):
    cond = parse_math_cond(text, name="p")
    assert cond.lower == lower
    assert cond.upper is None and cond.relation is None


def test_compound_bounds_combine_with_their_own_inclusiveness():
    cond = parse_math_cond("> 0.0 <= 1.0", name="p")
    assert cond.lower == Bound(0.0, False) and cond.upper == Bound(1.0, True)
    assert not cond.holds(0.0) and cond.holds(1e-12) and cond.holds(1.0) and not cond.holds(1.0000001)
    tighter = parse_math_cond(">= 0 > 0 < 1.0 <= 2", name="p")
    assert tighter.lower == Bound(0, False) and tighter.upper == Bound(1.0, False)


def test_not_equal_multiple_power_and_relations():
    assert parse_math_cond("!= 0", name="p").excluded == (0,)
    assert not parse_math_cond("!= 0", name="p").holds(0) and parse_math_cond("!= 0", name="p").holds(-1)
    assert parse_math_cond("/ 8", name="p").multiple_of == 8
    assert parse_math_cond("^ 2", name="p").power_of == 2
    for op in (">", ">=", "<", "<="):
        cond = parse_math_cond(f"{op} depends_on", name="p")
        assert cond.relation == op and cond.lower is None and cond.upper is None
    assert parse_math_cond("> depends_on / 8", name="p").multiple_of == 8  # parses; the compiler rejects the mix
    assert parse_math_cond("/ 8 / 12", name="p").multiple_of == 24  # both hold: lcm


def test_holds_checks_multiples_and_powers():
    cond = parse_math_cond("/ 8", name="p")
    assert cond.holds(64) and not cond.holds(65)
    assert cond.holds(65, check_multiple=False)
    powers = parse_math_cond("^ 2", name="p")
    assert powers.holds(1) and powers.holds(64) and not powers.holds(48) and not powers.holds(0)
    assert is_power(0.25, 2) and not is_power(3, 2)


def test_empty_and_none_conditions():
    assert parse_math_cond(None, name="p").is_empty
    assert parse_math_cond("  ", name="p").is_empty
    first = parse_math_cond("> 0", name="p")
    assert combine(first, parse_math_cond("", name="p"), name="p") is first
    both = combine(first, parse_math_cond("<= 5 / 2", name="p"), name="p")
    assert both.lower == Bound(0, False) and both.upper == Bound(5, True) and both.multiple_of == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("~ 3", "cannot read math_cond"),
        ("> zero", "cannot read math_cond"),
        ("/ 0", "positive finite number"),
        ("/ 2.5", "whole number"),
        ("^ 1", "integer base N >= 2"),
        ("^ 2.5", "integer base N >= 2"),
        ("!= depends_on", "only '>', '>=', '<' and '<='"),
        ("> depends_on < depends_on", "compares with depends_on twice"),
        ("> 5 < 1", "allows no value"),
        ("> 1 < 1", "allows no value"),
        ("^ 2 ^ 3", "two different bases"),
    ],
)
def test_unreadable_conditions_are_errors_naming_parameter_and_text(text, message):
    with pytest.raises(SearchSpaceError, match=message) as info:
        parse_math_cond(text, name="model.rank")
    assert "model.rank" in str(info.value)


def test_non_string_condition_is_an_error():
    with pytest.raises(SearchSpaceError, match="must be a string"):
        parse_math_cond(5, name="p")


def test_infinity_tokens():
    cond = parse_math_cond("> -inf < Infinity", name="p")
    assert cond.lower.value == -math.inf and cond.upper.value == math.inf
