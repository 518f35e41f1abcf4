"""Relations between parameters: `value <op> parent`, and keeping every relation satisfiable.

`relational_bounds` narrows a child's range by its parent's value (used when drawing and, for
unsearched parents, once at compile time). `make_satisfiable` clips searched parents at compile
time so that every parent value leaves each dependent at least one value: for `child > parent` the
parent must stay below the child's maximum; for a derived `child = parent // N` the parent must keep
the result inside the child's limits. The clipping is written into the parent's `why`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from hpo.space import ir
from hpo.space.ir import Parameter, join_notes
from skillkit.errors import SearchSpaceError


def relational_bounds(
    low: float, high: float, *, relation: str, parent: Any, is_int: bool, step: float | None
) -> tuple[float, float]:
    """Narrow [low, high] so that `value <relation> parent` holds (`>`/`<` strict), keeping multiples of `step`.

    The result may be empty (low > high); the compiler rules that out by clipping the parent's range.
    """
    if isinstance(parent, bool) or not isinstance(parent, (int, float)):
        raise SearchSpaceError(f"a relational condition needs a numeric parent value, got {parent!r}.")
    if relation == ">":
        bound = math.floor(parent) + 1 if is_int else math.nextafter(parent, math.inf)
        low = max(low, bound)
    elif relation == ">=":
        low = max(low, math.ceil(parent) if is_int else parent)
    elif relation == "<":
        bound = math.ceil(parent) - 1 if is_int else math.nextafter(parent, -math.inf)
        high = min(high, bound)
    elif relation == "<=":
        high = min(high, math.floor(parent) if is_int else parent)
    else:
        raise SearchSpaceError(f"unknown relation {relation!r}; known: >, >=, <, <=.")
    if step is not None:
        low = math.ceil(low / step - 1e-9) * step
        high = math.floor(high / step + 1e-9) * step
        if not is_int:
            low, high = round(low, 12), round(high, 12)
        # Rounding tolerance must never break the relation itself.
        if relation in (">", ">=") and not compare(low, relation, parent):
            low += step
        if relation in ("<", "<=") and not compare(high, relation, parent):
            high -= step
    if is_int:
        low, high = int(low), int(high)
    return low, high


def compare(value: float, relation: str, parent: float) -> bool:
    """`value <relation> parent`."""
    if relation == ">":
        return value > parent
    if relation == ">=":
        return value >= parent
    if relation == "<":
        return value < parent
    if relation == "<=":
        return value <= parent
    raise SearchSpaceError(f"unknown relation {relation!r}; known: >, >=, <, <=.")


# -- satisfiability --------------------------------------------------------------------------------

def make_satisfiable(params: dict[str, Parameter], order: list[str]) -> dict[str, Parameter]:
    """Clip searched parents so every parent value leaves the dependent a value (children first)."""
    params = dict(params)
    for name in reversed(order):
        child = params[name]
        if child.parent not in params or not (child.is_relational or child.is_derived):
            continue
        parent = params[child.parent]
        if parent.is_derived or parent.kind not in (ir.INT, ir.FLOAT, ir.CATEGORICAL):
            raise SearchSpaceError(
                f"parameter '{name}' depends on '{parent.name}' (kind {parent.kind}{', derived' if parent.is_derived else ''}); "
                "relations and '/ N' need a drawn numeric parent."
            )
        params[parent.name] = _clip_parent(parent, child)
    return params


def _parent_allowed(child: Parameter) -> tuple[str, float]:
    """The constraint on the parent's value as (relation, bound), e.g. ('<', child.high) for child > parent."""
    if child.relation == ">":
        return "<", child.high
    if child.relation == ">=":
        return "<=", child.high
    if child.relation == "<":
        return ">", child.low
    return ">=", child.low


def _clip_parent(parent: Parameter, child: Parameter) -> Parameter:
    if child.is_derived:
        constraints = []
        if child.low is not None:
            constraints.append((">=", child.low * child.divisor))
        if child.high is not None:
            constraints.append(("<", (child.high + 1) * child.divisor))
    else:
        constraints = [_parent_allowed(child)]
    for relation, bound in constraints:
        parent = _clip_once(parent, child, relation, bound)
    return parent


def _clip_once(parent: Parameter, child: Parameter, relation: str, bound: float) -> Parameter:
    reason = f"so that '{child.name}' ({child.condition or child.relation}) always has a value"
    if parent.kind == ir.CATEGORICAL:
        options = parent.options
        numeric = [c for c in options if isinstance(c, (int, float)) and not isinstance(c, bool)]
        if len(numeric) != len(options):
            raise SearchSpaceError(f"parameter '{child.name}' depends on '{parent.name}', whose options are not all numbers.")
        kept = tuple(c for c in options if compare(c, relation, bound))
        if kept == options:
            return parent
        if not kept:
            raise SearchSpaceError(
                f"parameter '{child.name}': no option of '{parent.name}' {list(options)} leaves it a value."
            )
        weights = None
        if parent.weights is not None:
            raw = [w for c, w in zip(options, parent.weights) if c in kept]
            weights = tuple(w / sum(raw) for w in raw)
        return replace(parent, choices=kept, weights=weights, why=join_notes([parent.why, f"options limited to {list(kept)} {reason}"]))
    is_int = parent.kind == ir.INT
    low, high = parent.low, parent.high
    if relation in ("<", "<="):
        if compare(high, relation, bound):
            return parent
        new_high = relational_bounds(low, high, relation=relation, parent=bound, is_int=is_int, step=parent.step)[1]
        if new_high < low:
            raise SearchSpaceError(
                f"parameter '{child.name}': no value of '{parent.name}' in [{low}, {high}] leaves it a value "
                f"('{parent.name}' must be {relation} {bound})."
            )
        return replace(parent, high=new_high, why=join_notes([parent.why, f"max lowered to {new_high:g} {reason}"]))
    if compare(low, relation, bound):
        return parent
    new_low = relational_bounds(low, high, relation=relation, parent=bound, is_int=is_int, step=parent.step)[0]
    if new_low > high:
        raise SearchSpaceError(
            f"parameter '{child.name}': no value of '{parent.name}' in [{low}, {high}] leaves it a value "
            f"('{parent.name}' must be {relation} {bound})."
        )
    return replace(parent, low=new_low, why=join_notes([parent.why, f"min raised to {new_low:g} {reason}"]))
