"""Drawing values for parameters, written once for every backend.

Each backend supplies a `Drawer` with three primitives (`float`, `int`, `categorical`); the rules
for turning primitive draws into a parameter's value (relational bounds, derived values, epoch lists,
subsets…) live only here. `RandomDrawer` uses a `numpy.random.Generator` (plain random sampling);
`TrialDrawer` calls an Optuna trial's `suggest_*` (define-by-run), so Optuna's samplers see every
primitive draw under a stable name. Composite values draw sub-parameters named `<name>#<i>`
(`#count`, `#set` for the list size and an optional list's presence).

Every primitive draw has a FIXED distribution, whatever was drawn before it, so each sampler sees one static
space (Optuna's GP, CMA-ES and multivariate TPE model all parameters jointly; Ray's BOHB gets a plain
ConfigSpace). The only values whose range depends on another value, relational children (`value >= parent`),
are drawn as a fraction of their feasible range (`<name>#fraction`, uniform on [0, 1]) and mapped back by
`from_fraction`; see that function for why samples keep their meaning and their distribution's support.
"""

from __future__ import annotations

import bisect
import builtins
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from hpo.space import ir
from hpo.space.ir import Parameter
from hpo.space.relations import relational_bounds
from skillkit.errors import SearchSpaceError


class Drawer(Protocol):
    def float(self, name: str, low: float, high: float, *, log: bool, step: float | None) -> float: ...

    def int(self, name: str, low: int, high: int, *, log: bool, step: int | None) -> int: ...

    def categorical(self, name: str, choices: Sequence[Any], probabilities: Sequence[builtins.float] | None) -> Any: ...


FRACTION = "#fraction"  # suffix of a relational child's primitive draw


class RandomDrawer:
    """Independent random draws from a numpy Generator (same seed → same values)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def float(self, name: str, low: float, high: float, *, log: bool, step: float | None) -> float:
        if low == high:
            return float(low)
        if step is not None:
            first = round(low / step)
            count = int(math.floor((high - low) / step + 1e-9))
            value = (first + int(self.rng.integers(0, count + 1))) * step
            return float(value - step if value > high + 1e-9 * abs(step) else value)
        if log:
            value = math.exp(self.rng.uniform(math.log(low), math.log(high)))
        else:
            value = self.rng.uniform(low, high)
        return float(min(max(value, low), high))

    def int(self, name: str, low: int, high: int, *, log: bool, step: int | None) -> int:
        if low == high:
            return int(low)
        if log:
            # Same as Optuna: uniform in log space over [low - 0.5, high + 0.5], then rounded.
            value = round(math.exp(self.rng.uniform(math.log(low - 0.5), math.log(high + 0.5))))
            return int(min(max(value, low), high))
        step = step or 1
        count = (high - low) // step
        return int(low + step * int(self.rng.integers(0, count + 1)))

    def categorical(self, name: str, choices: Sequence[Any], probabilities: Sequence[builtins.float] | None) -> Any:
        if probabilities is None:
            return choices[int(self.rng.integers(len(choices)))]
        # Inverse-CDF draw: much cheaper than Generator.choice(p=...) for a handful of options.
        index = bisect.bisect_right(list(itertools.accumulate(probabilities)), self.rng.random() * sum(probabilities))
        return choices[min(index, len(choices) - 1)]


class TrialDrawer:
    """Define-by-run draws through an Optuna trial (or anything with Optuna's `suggest_*` methods,
    such as Ray's trial captor). Option weights reach Optuna through `WeightedStartupSampler`."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def float(self, name: str, low: float, high: float, *, log: bool, step: float | None) -> float:
        return float(self.trial.suggest_float(name, low, high, log=log, step=step))

    def int(self, name: str, low: int, high: int, *, log: bool, step: int | None) -> int:
        return int(self.trial.suggest_int(name, low, high, log=log, step=step or 1))

    def categorical(self, name: str, choices: Sequence[Any], probabilities: Sequence[builtins.float] | None) -> Any:
        return self.trial.suggest_categorical(name, list(choices))


def parent_value(param: Parameter, values: Mapping[str, Any], fixed: Mapping[str, Any]) -> Any:
    parent = param.parent_name
    if parent in values:
        return values[parent]
    if parent in fixed:
        return fixed[parent]
    raise SearchSpaceError(
        f"parameter '{param.name}' depends on '{param.parent}', which has no value yet "
        "(parents must be drawn first)."
    )


def epochs_from_fractions(fractions: Sequence[float], budget: int) -> list[int]:
    """Place sorted budget fractions on epochs 1..budget-1, strictly increasing.

    A MultiStep milestone m decays the lr after epoch m; m = budget would fire after training ends,
    so milestones live in [1, budget - 1]. Collisions move up by one; what no longer fits is dropped.
    """
    epochs: list[int] = []
    if budget < 2:
        return epochs
    for fraction in sorted(fractions):
        epoch = min(max(int(math.floor(fraction * budget)), 1), budget - 1)
        if epochs and epoch <= epochs[-1]:
            epoch = epochs[-1] + 1
        if epoch > budget - 1:
            break
        epochs.append(epoch)
    return epochs


def _nudge(value: float, param: Parameter) -> float:
    if value in param.excluded:
        upward = math.nextafter(value, math.inf)
        return upward if upward <= param.high else math.nextafter(value, -math.inf)
    return value


def _count(param: Parameter, drawer: Drawer) -> int:
    min_items, max_items = param.item_counts
    if min_items == max_items:
        return min_items
    return drawer.int(f"{param.name}#count", min_items, max_items, log=False, step=None)


def draw_parameter(
    param: Parameter,
    drawer: Drawer,
    values: Mapping[str, Any],
    fixed: Mapping[str, Any],
    *,
    epoch_budget: int | None,
) -> Any:
    """Draw one parameter's value given the values already drawn for its parents."""
    kind = param.kind
    name = param.name
    log = param.scale == "log"
    if param.is_derived:
        value: Any = int(parent_value(param, values, fixed) // param.divisor)
        if param.low is not None:
            value = max(value, param.low)
        if param.high is not None:
            value = min(value, param.high)
        return value
    if kind in (ir.FLOAT, ir.INT):
        low, high = param.low, param.high
        if param.is_relational:
            low, high = relational_bounds(
                low, high, relation=param.relation_op, parent=parent_value(param, values, fixed),
                is_int=kind == ir.INT, step=param.step,
            )
            if low > high:
                raise SearchSpaceError(
                    f"parameter '{name}': no value satisfies '{param.relation} {param.parent}' "
                    f"with {param.parent}={parent_value(param, values, fixed)!r} inside [{param.low}, {param.high}]."
                )
            fraction = drawer.float(name + FRACTION, 0.0, 1.0, log=False, step=None)
            return from_fraction(param, fraction, low, high)
        if kind == ir.FLOAT:
            return _nudge(drawer.float(name, low, high, log=log, step=param.step), param)
        return drawer.int(name, int(low), int(high), log=log, step=param.int_step)
    if kind in (ir.CATEGORICAL, ir.BOOL):
        return drawer.categorical(name, param.options, param.weights)
    if kind == ir.EPOCH_LIST:
        count = _count(param, drawer)
        fractions = [drawer.float(f"{name}#{i}", param.low, param.high, log=False, step=None)
                     for i in range(param.item_counts[1])]
        budget = epoch_budget if epoch_budget is not None else parent_value(param, values, fixed)
        return epochs_from_fractions(fractions[:count], int(budget))
    if kind == ir.SORTED_INT_LIST:
        count = _count(param, drawer)
        drawn = [drawer.int(f"{name}#{i}", param.low, param.high, log=False, step=param.int_step)
                 for i in range(param.item_counts[1])]
        return sorted(drawn[:count])
    if kind == ir.INT_RANGE_LIST:
        first = drawer.int(f"{name}#0", param.low, param.high, log=False, step=None)
        second = drawer.int(f"{name}#1", param.low, param.high, log=False, step=None)
        return list(range(min(first, second), max(first, second) + 1))
    if kind == ir.REPEATED_INT_LIST:
        value = drawer.int(f"{name}#0", param.low, param.high, log=False, step=param.int_step)
        return [value] * int(param.length or 2)
    if kind == ir.FLOAT_LIST:
        return [drawer.float(f"{name}#{i}", lo, hi, log=False, step=None) for i, (lo, hi) in enumerate(zip(param.low, param.high))]
    if kind == ir.SUBSET_LIST:
        options = param.options
        chosen: list[int] = []
        for index in range(len(options)):
            p = 0.5 if param.weights is None else param.weights[index]
            if drawer.categorical(f"{name}#{index}", (False, True), (1.0 - p, p)):
                chosen.append(index)
        for index in range(len(options)):
            if len(chosen) >= (param.min_items or 0):
                break
            if index not in chosen:
                chosen.append(index)
        return [options[i] for i in sorted(chosen)]
    if kind == ir.OPTIONAL_LIST:
        present = drawer.categorical(f"{name}#set", (False, True), None)
        return list(param.options) if present else None
    raise SearchSpaceError(f"parameter '{name}': cannot draw kind {kind!r}.")


def from_fraction(param: Parameter, fraction: float, low: float, high: float) -> Any:
    """A relational child's value from its fraction u in [0, 1] of the feasible range [low, high] (already
    narrowed by the parent's value, `relational_bounds`).

    Why samples keep their meaning and support: for a fixed parent value the feasible set F is
    [low, high] intersected with the child's grid (integers, multiples of `step`), non-empty by compile-time
    clipping (`make_satisfiable`). The map below sends [0, 1] into F (it clamps) and onto F (continuous: a
    monotone bijection onto [low, high]; discrete: value k of the n = |F| values takes the sub-interval
    [k/n, (k+1)/n) of u, and u = 1 the last), so every sample satisfies the relation and every feasible value
    can be drawn. With u uniform the value has exactly the distribution the define-by-run draw gives F:
    uniform (linear), log-uniform (log, also for integers over [low - 0.5, high + 0.5] as Optuna does), or
    uniform over the n grid points. A sampler that learns a density over u therefore learns one over the
    child's position inside whatever range its parent leaves it.
    """
    u = min(max(float(fraction), 0.0), 1.0)
    log = param.scale == "log"
    if param.kind == ir.INT and log:
        lo, hi = math.log(low - 0.5), math.log(high + 0.5)
        return int(min(max(round(math.exp(lo + u * (hi - lo))), low), high))
    if param.kind == ir.INT or param.step is not None:
        step = param.step or 1
        count = int(math.floor((high - low) / step + 1e-9)) + 1
        index = min(int(math.floor(u * count)), count - 1)
        value = low + index * step
        if param.kind == ir.INT:
            return int(value)
        return _nudge(float(min(round(value, 12), high)), param)
    if u >= 1.0:  # the ends exactly (exp/log round-off must not lose the upper bound)
        value = high
    elif log:
        value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    else:
        value = low + u * (high - low)
    return _nudge(float(min(max(value, low), high)), param)


def sub_draw_weights(param: Parameter) -> dict[str, tuple[tuple[Any, ...], tuple[float, ...]]]:
    """Optuna parameter name → (choices, probabilities) for every weighted categorical draw."""
    if param.kind in (ir.CATEGORICAL, ir.BOOL) and param.weights is not None:
        return {param.name: (param.options, tuple(param.weights))}
    if param.kind == ir.SUBSET_LIST and param.weights is not None:
        return {
            f"{param.name}#{i}": ((False, True), (1.0 - p, p)) for i, p in enumerate(param.weights)
        }
    return {}
