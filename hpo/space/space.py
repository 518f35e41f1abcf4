"""`SearchSpace`: an ordered set of `Parameter`s plus the values of parents that are not searched.

It draws values (numpy random sampling, Optuna define-by-run), converts itself to backend search
spaces (Optuna distributions, Ray Tune param spaces — see `to_optuna`/`to_ray`), perturbs
values for PBT, checks values against every rule, and round-trips through YAML.

`is_conditional` is true when some parameter's value cannot come from one independent one-value
distribution: it depends on another parameter (relational, derived, epoch budget) or is a list
assembled from several draws. Such spaces must be driven define-by-run (`suggest`, or Ray's
Optuna-searcher route); `optuna_distributions()`/`ray_param_space()` refuse them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import yaml

from hpo.space import ir
from hpo.space.draw import RandomDrawer, TrialDrawer, draw_parameter, parent_value, sub_draw_weights
from hpo.space.ir import Parameter
from hpo.space.relations import compare, relational_bounds
from skillkit.errors import SearchSpaceError
from skillkit.math_cond import is_multiple

FORMAT = "hpo-search-space/1"
YAML_HEADER = (
    "# Compiled search space (hpo space compile). Generated from the action schema; do not edit by hand.\n"
    "# Each parameter's `why` explains its kind, range and scale; see hpo/space/README.md for the rules.\n"
)


def format_override_value(value: Any) -> str:
    """A value as the right-hand side of a dotted override that YAML reads back as the same value.

    PyYAML reads `1e-05` as a string (its float syntax needs a dot), so floats go through its own
    representer, which writes `1.0e-05`.
    """
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    if text.endswith("..."):
        text = text[:-3].strip()
    return text


class _Dumper(yaml.SafeDumper):
    """Safe YAML with lists of scalars written inline (`[1, 2]`) and everything else as blocks."""


def _represent_list(dumper: yaml.SafeDumper, data: list | tuple) -> yaml.Node:
    flat = all(not isinstance(item, (dict, list, tuple)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(tuple, _represent_list)


class SearchSpace:
    """The compiled search space (see module docstring); build it with `compile_space`."""

    def __init__(
        self,
        parameters: Sequence[Parameter],
        *,
        fixed: Mapping[str, Any] | None = None,
        source: Mapping[str, Any] | None = None,
    ) -> None:
        self.parameters: tuple[Parameter, ...] = tuple(parameters)
        self.fixed: dict[str, Any] = dict(fixed or {})
        self.source: dict[str, Any] = dict(source or {})
        self._by_name: dict[str, Parameter] = {}
        for param in self.parameters:
            if param.name in self._by_name:
                raise SearchSpaceError(f"parameter '{param.name}' appears twice in the search space.")
            if param.parent is not None and param.parent not in self._by_name and param.parent not in self.fixed:
                raise SearchSpaceError(
                    f"parameter '{param.name}' depends on '{param.parent}', which is neither an earlier parameter "
                    "nor a fixed value; parents must come before their dependents."
                )
            self._by_name[param.name] = param

    # -- basics ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.parameters)

    def __getitem__(self, name: str) -> Parameter:
        try:
            return self._by_name[name]
        except KeyError:
            raise SearchSpaceError(f"the search space has no parameter '{name}'.") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"SearchSpace({', '.join(self.names)})"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def is_conditional(self) -> bool:
        return any(p.is_conditional for p in self.parameters)

    @property
    def conditional_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters if p.is_conditional)

    # -- drawing ---------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, *, epoch_budget: int | None = None) -> dict[str, Any]:
        """One random configuration (option weights honoured); same generator state → same values."""
        drawer = RandomDrawer(rng)
        values: dict[str, Any] = {}
        for param in self.parameters:
            values[param.name] = draw_parameter(param, drawer, values, self.fixed, epoch_budget=epoch_budget)
        return values

    def suggest(self, trial: Any, *, epoch_budget: int | None = None) -> dict[str, Any]:
        """Define-by-run: draw every parameter through `trial.suggest_*`; returns dotted name → value.

        Sub-draws of composite values appear in `trial.params` as `<name>#<i>`; the returned dict holds
        only the final values. Use `optuna_sampler()` so option weights shape the startup trials.
        """
        drawer = TrialDrawer(trial)
        values: dict[str, Any] = {}
        for param in self.parameters:
            values[param.name] = draw_parameter(param, drawer, values, self.fixed, epoch_budget=epoch_budget)
        return values

    # -- the static form (hpo.space.static) -------------------------------------------------------
    def static_dimensions(self, *, epoch_budget: int | None = None) -> tuple[Any, ...]:
        """The primitive draws as fixed `static.Dimension`s: the space every sampler models jointly."""
        from hpo.space import static

        return static.dimensions(self, epoch_budget=epoch_budget)

    def sample_static(self, rng: np.random.Generator, *, epoch_budget: int | None = None
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(configuration, its static point); same values as `sample` for the same generator state."""
        from hpo.space import static

        return static.sample(self, rng, epoch_budget=epoch_budget)

    def decode(self, point: Mapping[str, Any], *, epoch_budget: int | None = None) -> dict[str, Any]:
        """The configuration a static point (one value per primitive draw) stands for."""
        from hpo.space import static

        return static.decode(self, point, epoch_budget=epoch_budget)

    def select_values(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters' values out of a flat config that may also hold sub-draws (Ray's config)."""
        missing = [name for name in self.names if name not in config]
        if missing:
            raise SearchSpaceError(f"the configuration lacks values for {missing}.")
        return {name: config[name] for name in self.names}

    def categorical_weights(self) -> dict[str, tuple[tuple[Any, ...], tuple[float, ...]]]:
        """Optuna parameter name → (choices, probabilities) of every weighted categorical draw."""
        out: dict[str, tuple[tuple[Any, ...], tuple[float, ...]]] = {}
        for param in self.parameters:
            out.update(sub_draw_weights(param))
        return out

    # -- backends --------------------------------------------------------------------------------
    def optuna_distributions(self) -> dict[str, Any]:
        from hpo.space.to_optuna import distributions

        return distributions(self)

    def optuna_sampler(self, base: Any = None, *, seed: int | None = None, n_startup_trials: int | None = None) -> Any:
        """An Optuna sampler that draws weighted options by their weights during the startup trials."""
        from hpo.space.to_optuna import WeightedStartupSampler

        return WeightedStartupSampler(self.categorical_weights(), base=base, seed=seed, n_startup_trials=n_startup_trials)

    def ray_param_space(self) -> dict[str, Any]:
        from hpo.space.to_ray import param_space

        return param_space(self)

    # -- PBT -------------------------------------------------------------------------------------
    def perturb(
        self,
        values: Mapping[str, Any],
        rng: np.random.Generator,
        *,
        factor: float = 1.2,
        resample_probability: float = 0.25,
    ) -> dict[str, Any]:
        """PBT explore step: numbers ×factor or ÷factor, options move to a neighbour, and with
        `resample_probability` a parameter is redrawn. Lists are redrawn or kept (redrawn when their
        parent moved so that they no longer fit). Results stay inside
        bounds and conditions (relations use the perturbed parent; derived values are recomputed)."""
        if factor <= 1:
            raise SearchSpaceError(f"perturb factor must be > 1, got {factor}.")
        drawer = RandomDrawer(rng)
        out: dict[str, Any] = {}
        for param in self.parameters:
            name = param.name
            current = values.get(name)
            if param.is_derived or name not in values or rng.random() < resample_probability:
                out[name] = draw_parameter(param, drawer, out, self.fixed, epoch_budget=None)
                continue
            if param.kind in (ir.FLOAT, ir.INT):
                out[name] = self._perturb_number(param, current, out, rng, factor)
            elif param.kind in (ir.CATEGORICAL, ir.BOOL):
                choices = list(param.options)
                index = choices.index(current) if current in choices else int(rng.integers(len(choices)))
                index = min(max(index + (1 if rng.random() < 0.5 else -1), 0), len(choices) - 1)
                out[name] = choices[index]
            elif _violation(param, current, out, self.fixed, None) is None:
                out[name] = current
            else:  # e.g. milestones past a perturbed epoch count: redraw
                out[name] = draw_parameter(param, drawer, out, self.fixed, epoch_budget=None)
        return out

    def _perturb_number(self, param: Parameter, current: Any, values: Mapping[str, Any],
                        rng: np.random.Generator, factor: float) -> Any:
        low, high = param.low, param.high
        is_int = param.kind == ir.INT
        if param.is_relational:
            low, high = relational_bounds(low, high, relation=param.relation_op, parent=parent_value(param, values, self.fixed),
                                          is_int=is_int, step=param.step)
        up = rng.random() < 0.5
        value = current * (factor if up else 1 / factor) if current != 0 else (param.step or (1 if is_int else (high - low) * 0.1))
        if param.step is not None:
            step = param.step
            value = round(value / step) * step
            if value == current:
                value = current + (step if up else -step)
            value = min(max(value, low), high)
            value = round(value / step) * step
            value = min(max(value, low), high)
        elif is_int:
            value = int(round(value))
            if value == current:
                value = current + (1 if up else -1)
        value = min(max(value, low), high)
        if is_int:
            return int(value)
        value = float(value)
        if value in param.excluded:
            value = math.nextafter(value, high)
        return value

    # -- checking --------------------------------------------------------------------------------
    def violations(self, values: Mapping[str, Any], *, epoch_budget: int | None = None) -> list[str]:
        """Every rule a configuration breaks (empty when it is valid)."""
        problems: list[str] = []
        for param in self.parameters:
            if param.name not in values:
                problems.append(f"'{param.name}' is missing")
                continue
            problem = _violation(param, values[param.name], values, self.fixed, epoch_budget)
            if problem:
                problems.append(f"'{param.name}' = {values[param.name]!r}: {problem}")
        return problems

    def value_problem(self, name: str, value: Any) -> str | None:
        """What is wrong with `value` for the unconditional parameter `name` alone (None when it is allowed)."""
        param = self[name]
        if param.is_conditional:
            raise SearchSpaceError(f"parameter '{name}' depends on other values; check whole configurations.")
        return _violation(param, value, {}, self.fixed, None)

    def check(self, values: Mapping[str, Any], *, epoch_budget: int | None = None) -> None:
        problems = self.violations(values, epoch_budget=epoch_budget)
        if problems:
            raise SearchSpaceError("configuration breaks the search space: " + "; ".join(problems) + ".")

    # -- output ----------------------------------------------------------------------------------
    def to_overrides(self, values: Mapping[str, Any]) -> list[str]:
        """`dotted.name=value` strings (`mask2former train` / `hpo.spec.apply_overrides` syntax)."""
        return [f"{name}={format_override_value(values[name])}" for name in self.names if name in values]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema": dict(self.source),
            "conditional": self.is_conditional,
            "fixed": dict(sorted(self.fixed.items())),
            "parameters": [p.to_mapping() for p in self.parameters],
        }

    def to_yaml(self) -> str:
        """Block mappings, inline lists, one line per value: stable and readable in diffs."""
        return YAML_HEADER + yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, width=10_000, allow_unicode=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise SearchSpaceError(
                f"not a compiled search space: expected format '{FORMAT}', got {data.get('format') if isinstance(data, Mapping) else data!r}."
            )
        raw_params = data.get("parameters")
        if not isinstance(raw_params, list):
            raise SearchSpaceError("a compiled search space needs a 'parameters' list.")
        fixed = data.get("fixed") or {}
        if not isinstance(fixed, Mapping):
            raise SearchSpaceError("a compiled search space's 'fixed' must be a mapping.")
        return cls([Parameter.from_mapping(item) for item in raw_params], fixed=fixed, source=data.get("schema") or {})

    @classmethod
    def from_yaml(cls, text: str) -> SearchSpace:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise SearchSpaceError(f"compiled search space is not valid YAML: {error}") from None
        return cls.from_dict(data)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _in_range(value: float, low: float, high: float) -> bool:
    return low <= value <= high


def _parent_of(param: Parameter, values: Mapping[str, Any], fixed: Mapping[str, Any]) -> Any:
    """The value of `param`'s parent (None when it has no parent or the parent has no value yet)."""
    if param.parent is None:
        return None
    return values.get(param.parent, fixed.get(param.parent))


def _violation(param: Parameter, value: Any, values: Mapping[str, Any], fixed: Mapping[str, Any],
               epoch_budget: int | None) -> str | None:
    kind = param.kind
    if param.is_derived:
        parent = _parent_of(param, values, fixed)
        if parent is None:
            return f"its parent '{param.parent}' has no value"
        expected = int(parent // param.divisor)
        if param.low is not None:
            expected = max(expected, param.low)
        if param.high is not None:
            expected = min(expected, param.high)
        if _is_number(value) and math.isclose(value, expected):
            return None
        return f"must equal {param.parent} {param.relation} {param.divisor} = {expected}"
    if kind in (ir.FLOAT, ir.INT):
        if kind == ir.INT and not _is_int(value):
            return "not an integer"
        if not _is_number(value):
            return "not a finite number"
        if not _in_range(value, param.low, param.high):
            return f"outside [{param.low}, {param.high}]"
        if param.step is not None and not is_multiple(value, param.step):
            return f"not a multiple of {param.step}"
        if value in param.excluded:
            return "an excluded value"
        if param.is_relational:
            parent = _parent_of(param, values, fixed)
            if parent is None or not compare(value, param.relation_op, parent):
                return f"must be {param.relation} {param.parent} ({parent!r})"
        return None
    if kind in (ir.CATEGORICAL, ir.BOOL):
        return None if any(_same_choice(value, c) for c in param.options) else f"not one of {list(param.options)}"
    if kind == ir.OPTIONAL_LIST:
        return None if value is None or list(value) == list(param.options) else "must be null or the full option list"
    if not isinstance(value, list):
        return "not a list"
    if kind == ir.SUBSET_LIST:
        options = param.options
        indices = [options.index(v) if v in options else -1 for v in value]
        if -1 in indices or indices != sorted(set(indices)):
            return f"not a subset of {list(options)} in option order"
        return None if len(value) >= (param.min_items or 0) else f"fewer than {param.min_items} options"
    if kind == ir.FLOAT_LIST:
        if len(value) != len(param.low) or not all(_is_number(v) and lo <= v <= hi for v, lo, hi in zip(value, param.low, param.high)):
            return "elements outside their per-element ranges"
        return None
    if not all(_is_int(v) for v in value):
        return "elements must be integers"
    if kind == ir.EPOCH_LIST:
        budget = epoch_budget if epoch_budget is not None else _parent_of(param, values, fixed)
        if budget is None:
            return f"no epoch budget to check against ({param.parent} has no value)"
        if len(value) > param.item_counts[1]:
            return f"more than {param.max_items} epochs"
        if any(b <= a for a, b in zip(value, value[1:])):
            return "epochs must be strictly increasing"
        return None if all(1 <= v <= budget - 1 for v in value) else f"epochs must lie in [1, {budget - 1}] (budget {budget})"
    if kind == ir.SORTED_INT_LIST:
        min_items, max_items = param.item_counts
        if value != sorted(value) or not min_items <= len(value) <= max_items:
            return f"must be {param.min_items}-{param.max_items} sorted integers"
    elif kind == ir.INT_RANGE_LIST:
        if not value or value != list(range(value[0], value[-1] + 1)):
            return "must be consecutive integers"
    elif kind == ir.REPEATED_INT_LIST:
        if len(value) != (param.length or 2) or len(set(value)) != 1:
            return f"must repeat one integer {param.length or 2} times"
    if not all(param.low <= v <= param.high for v in value):
        return f"elements outside [{param.low}, {param.high}]"
    if param.step is not None and not all(is_multiple(v, param.step) for v in value):
        return f"elements must be multiples of {param.step}"
    return None


def _same_choice(value: Any, choice: Any) -> bool:
    """Equality that keeps True apart from 1 and "1" apart from 1."""
    if isinstance(value, bool) or isinstance(choice, bool):
        return isinstance(value, bool) and isinstance(choice, bool) and value == choice
    if _is_number(value) and _is_number(choice):
        return value == choice
    return type(value) is type(choice) and value == choice
