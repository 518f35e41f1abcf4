"""Compile a TAO-format schema into a `SearchSpace`: select leaves, give each a kind and a finite
range with an explanation, wire dependencies, and make every dependency satisfiable.

Dependencies (`depends_on`):
- `<op> depends_on` (`>`, `>=`, `<`, `<=`): the value is drawn inside its own range narrowed by the
  parent's value. If the parent is searched the narrowing happens per trial; the parent's range is
  clipped at compile time so that every parent value leaves at least one child value (the parent's
  `why` says so). If the parent is not searched, its pinned value or schema default is used and the
  narrowing happens once, here.
- `/ N` with `depends_on`: the value is derived, `parent // N` (integer leaves only), not drawn;
  the parent's range is clipped so the result stays inside the child's schema limits.
- epoch lists (MultiStep milestones, `lr_steps`; see `lists.py`): positions are drawn as fractions
  of the trial's epoch budget, so the milestones fall inside the epochs the trial actually trains.
The satisfiability clipping lives in `relations.py`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from hpo.space import ir
from hpo.space.bounds import custom_number, describe_limits, inside, limits_of, resolve_numeric, to_number
from hpo.space.choices import cast_bool, cast_float, cast_int, resolve_choices, scalar_option, schema_options
from hpo.space.ir import Parameter, join_notes
from hpo.space.lists import LIST_TYPES, ListCompiler
from hpo.space.reader import SchemaInfo, SchemaLeaf, read_schema
from hpo.space.relations import make_satisfiable, relational_bounds
from hpo.space.selection import select_names, topological_order
from hpo.space.space import SearchSpace
from skillkit.errors import SearchSpaceError
from skillkit.math_cond import MathCond, combine, parse_math_cond

CUSTOM_KEYS = {
    "min": "min", "valid_min": "min", "minimum": "min",
    "max": "max", "valid_max": "max", "maximum": "max",
    "options": "options", "valid_options": "options", "enum": "options",
    "weights": "weights", "option_weights": "weights",
    "math_cond": "math_cond", "depends_on": "depends_on", "scale": "scale",
}

NUMERIC_TYPES = {"int": True, "integer": True, "float": False}


def compile_space(
    schema: Mapping[str, Any],
    *,
    selection: Sequence[str] | None = None,
    custom_param_ranges: Mapping[str, Mapping[str, Any]] | None = None,
    pinned: Mapping[str, Any] | None = None,
    override_automl_disabled_params: bool = False,
) -> SearchSpace:
    """Compile `schema` (a TAO-format action schema dict) into a search space.

    selection: dotted names to search (default: the schema's automl_default_parameters);
    custom_param_ranges: per-parameter `min`/`max`/`options`/`weights`/`math_cond`/`depends_on`/`scale`
    (TAO's `valid_min`/`valid_max`/`valid_options`/`option_weights` spellings accepted), which must
    lie inside the schema's limits; pinned: values the spec fixes (dropped from the defaults, and used
    as parent values); override_automl_disabled_params: allow selecting disabled leaves.
    Every problem is a `SearchSpaceError` naming the parameter, the rule and the value.
    """
    info = read_schema(schema)
    pinned = dict(pinned or {})
    names = select_names(info, selection=selection, pinned=pinned, override_disabled=override_automl_disabled_params)
    custom = _normalise_custom(custom_param_ranges, names)
    compiler = _Compiler(info, frozenset(names), pinned)
    params = {name: _with_pbt_mark(compiler.leaf(info.leaves[name], custom.get(name, {})), info.leaves[name])
              for name in names}
    order = topological_order(params, {name: p.parent if p.parent in params else None for name, p in params.items()})
    params = make_satisfiable(params, order)
    source = {key: info.source[key] for key in sorted(info.source)}
    return SearchSpace([params[name] for name in order], fixed=compiler.fixed, source=source)


def _with_pbt_mark(param: Parameter, leaf: SchemaLeaf) -> Parameter:
    """`hot` from the leaf's `x_pbt` mark (our schema extension; anything but "hot" is cold): whether PBT may
    change the value in the middle of a training run. A leaf without the mark is cold, so a parameter made
    searchable later is never perturbed by accident."""
    mark = leaf.get("x_pbt")
    if mark not in (None, "hot", "cold"):
        raise SearchSpaceError(f"parameter '{leaf.path}': x_pbt must be 'hot' or 'cold', got {mark!r}.")
    return replace(param, hot=True) if mark == "hot" else param


def _normalise_custom(raw: Mapping[str, Mapping[str, Any]] | None, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SearchSpaceError(f"custom_param_ranges must be a mapping of parameter name to range, got {raw!r}.")
    out: dict[str, dict[str, Any]] = {}
    for name, entry in raw.items():
        if name not in names:
            raise SearchSpaceError(
                f"custom_param_ranges gives a range for '{name}', which is not searched; "
                f"searched parameters: {', '.join(sorted(names))}."
            )
        if not isinstance(entry, Mapping):
            raise SearchSpaceError(f"custom_param_ranges['{name}'] must be a mapping, got {entry!r}.")
        normalised: dict[str, Any] = {}
        for key, value in entry.items():
            if key not in CUSTOM_KEYS:
                raise SearchSpaceError(
                    f"custom_param_ranges['{name}'] has unknown key '{key}'; allowed: "
                    "min, max, options, weights, math_cond, depends_on, scale."
                )
            normalised[CUSTOM_KEYS[key]] = value
        out[name] = normalised
    return out


class _Compiler(ListCompiler):
    """Compiles single leaves; records the values of parents that are not searched in `fixed`."""

    def __init__(self, info: SchemaInfo, selected: frozenset[str], pinned: Mapping[str, Any]) -> None:
        self.info = info
        self.selected = selected
        self.pinned = pinned
        self.fixed: dict[str, Any] = {}

    # -- parents ---------------------------------------------------------------------------------
    def parent(self, name: str, parent: Any, *, purpose: str) -> tuple[bool, Any]:
        """(is_searched, fixed value) of `name`'s parent; numeric fixed values only."""
        if not isinstance(parent, str) or parent not in self.info.leaves:
            raise SearchSpaceError(
                f"parameter '{name}': depends_on {parent!r} is not a parameter of the schema ({purpose})."
            )
        if parent == name:
            raise SearchSpaceError(f"parameter '{name}': depends_on names the parameter itself.")
        if parent in self.selected:
            return True, None
        value = self.pinned[parent] if parent in self.pinned else self.info.leaves[parent].default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SearchSpaceError(
                f"parameter '{name}': its parent '{parent}' is not searched and its "
                f"{'pinned value' if parent in self.pinned else 'schema default'} {value!r} is not a number "
                f"({purpose}); pin '{parent}' to a number or search it too."
            )
        self.fixed[parent] = value
        return False, value

    def check_numeric_parent(self, name: str, parent: Any) -> None:
        if not isinstance(parent, str) or parent not in self.info.leaves:
            raise SearchSpaceError(f"parameter '{name}': depends_on {parent!r} is not a parameter of the schema.")
        leaf = self.info.leaves[parent]
        if leaf.type not in NUMERIC_TYPES:
            raise SearchSpaceError(
                f"parameter '{name}': depends_on '{parent}' has type '{leaf.type}'; relations and '/ N' need a "
                "numeric (int/float) parent."
            )

    # -- dispatch --------------------------------------------------------------------------------
    def leaf(self, leaf: SchemaLeaf, custom: Mapping[str, Any]) -> Parameter:
        kind = leaf.type
        name = leaf.path
        if kind in NUMERIC_TYPES:
            return self.numeric(leaf, custom, is_int=NUMERIC_TYPES[kind])
        if kind in ("categorical", "ordered", "ordered_int", "string"):
            return self.categorical(leaf, custom)
        if kind == "bool":
            return self.boolean(leaf, custom)
        if kind in LIST_TYPES:
            return self.list_kind(leaf, custom)
        if kind in ("collection", "dict"):
            raise SearchSpaceError(
                f"parameter '{name}' has type '{kind}' and cannot be searched; select scalar leaves instead."
            )
        raise SearchSpaceError(f"parameter '{name}' has unknown type '{kind}' and cannot be searched.")

    def _cond(self, leaf: SchemaLeaf, custom: Mapping[str, Any]) -> MathCond:
        cond = parse_math_cond(leaf.get("math_cond"), name=leaf.path)
        if custom.get("math_cond") is not None:
            cond = combine(cond, parse_math_cond(custom["math_cond"], name=leaf.path), name=leaf.path)
        return cond

    def _no_dependency(self, leaf: SchemaLeaf, custom: Mapping[str, Any], cond: MathCond, what: str) -> None:
        if cond.relation is not None:
            raise SearchSpaceError(
                f"parameter '{leaf.path}': math_cond '{cond.text}' compares with depends_on, which a {what} "
                "parameter cannot do."
            )

    # -- numbers ---------------------------------------------------------------------------------
    def numeric(self, leaf: SchemaLeaf, custom: Mapping[str, Any], *, is_int: bool) -> Parameter:
        name = leaf.path
        cond = self._cond(leaf, custom)
        depends_on = custom.get("depends_on") or leaf.get("depends_on")
        node_min = to_number(leaf.get("minimum"), name=name, key="minimum")
        node_max = to_number(leaf.get("maximum"), name=name, key="maximum")
        if cond.relation is not None and not depends_on:
            raise SearchSpaceError(
                f"parameter '{name}': math_cond '{cond.text}' compares with depends_on, but the leaf names no "
                "depends_on parameter."
            )
        if depends_on and cond.multiple_of is not None:
            if cond.relation is not None:
                raise SearchSpaceError(
                    f"parameter '{name}': math_cond '{cond.text}' combines '{cond.relation} depends_on' with "
                    f"'/ {cond.multiple_of:g}'; with depends_on, '/ N' means the parent's value // N, which contradicts "
                    "the relation. Use one of them."
                )
            return self.derived(leaf, cond, depends_on, node_min, node_max, is_int=is_int)
        if custom.get("options") is not None or schema_options(leaf):
            return self.numeric_choices(leaf, custom, cond, node_min, node_max, is_int=is_int)
        hint = leaf.get("x_search_range")
        if hint is not None:
            if not isinstance(hint, (list, tuple)) or len(hint) != 2:
                raise SearchSpaceError(f"parameter '{name}': x_search_range must be [min, max], got {hint!r}.")
            hint_low = to_number(hint[0], name=name, key="x_search_range")
            hint_high = to_number(hint[1], name=name, key="x_search_range")
            if hint_low is None or hint_high is None or hint_low > hint_high:
                raise SearchSpaceError(f"parameter '{name}': x_search_range must be [min, max] with min <= max, "
                                       f"got {[hint_low, hint_high]}.")
            hint = (hint_low, hint_high)
        user_min = custom_number(custom, "min", name=name)
        user_max = custom_number(custom, "max", name=name)
        if user_min is not None and user_max is not None and user_min > user_max:
            raise SearchSpaceError(
                f"parameter '{name}': custom_param_ranges min {user_min} is greater than max {user_max}."
            )
        result = resolve_numeric(
            name=name, is_int=is_int, default=leaf.default, node_min=node_min, node_max=node_max, cond=cond,
            user_min=user_min, user_max=user_max, hint=hint,
            scale_hint=custom.get("scale") or leaf.get("x_scale"), multiple_of=cond.multiple_of,
        )
        notes = list(result.notes)
        if result.choices is not None:
            self._no_dependency(leaf, custom, cond, "power-of")
            return Parameter(
                name=name, kind=ir.CATEGORICAL, default=leaf.default, choices=result.choices,
                condition=cond.text, why=join_notes(notes), tao_type=leaf.type,
            )
        low, high = result.low, result.high
        parent = relation = None
        if cond.relation is not None:
            self.check_numeric_parent(name, depends_on)
            searched, value = self.parent(name, depends_on, purpose=f"math_cond '{cond.text}'")
            if searched:
                parent, relation = depends_on, cond.relation
                notes.append(f"drawn {cond.relation} the value drawn for {depends_on}")
            else:
                low, high = relational_bounds(low, high, relation=cond.relation, parent=value, is_int=is_int, step=result.step)
                if low > high:
                    raise SearchSpaceError(
                        f"parameter '{name}': with '{depends_on}' fixed at {value!r}, no value in "
                        f"[{result.low}, {result.high}] satisfies '{cond.relation} {depends_on}'."
                    )
                notes.append(f"range [{low}, {high}] because it must be {cond.relation} {depends_on} (fixed at {value!r})")
        elif depends_on:
            notes.append(f"depends_on '{depends_on}' has no effect: math_cond has no relation or '/ N'")
        if result.excluded and result.scale == "log":
            notes.append("excluded values are nudged after the log-scale draw")
        condition = cond.text.replace("depends_on", depends_on) if cond.relation else cond.text
        return Parameter(
            name=name, kind=ir.INT if is_int else ir.FLOAT, default=leaf.default, low=low, high=high,
            scale=result.scale, step=result.step, excluded=result.excluded, parent=parent, relation=relation,
            condition=condition, why=join_notes(notes), tao_type=leaf.type,
        )

    def numeric_choices(self, leaf: SchemaLeaf, custom: Mapping[str, Any], cond: MathCond,
                        node_min: float | None, node_max: float | None, *, is_int: bool) -> Parameter:
        name = leaf.path
        self._no_dependency(leaf, custom, cond, "enum-valued")
        lim_low, lim_high = limits_of(node_min, node_max, cond, name=name)

        def accept(value: Any) -> str | None:
            if not inside(value, lim_low, lim_high):
                return f"lies outside the schema's limits {describe_limits(lim_low, lim_high)}"
            if not cond.holds(value):
                return f"violates math_cond '{cond.text}'"
            return None

        def cast(value: Any) -> Any:
            return cast_int(value, name=name) if is_int else cast_float(value, name=name)

        choices, weights, notes = resolve_choices(leaf, custom, name=name, cast=cast, accept=accept)
        return Parameter(
            name=name, kind=ir.CATEGORICAL, default=leaf.default, choices=choices, weights=weights,
            condition=cond.text, why=join_notes(["numeric options", *notes]), tao_type=leaf.type,
        )

    def derived(self, leaf: SchemaLeaf, cond: MathCond, depends_on: str, node_min: float | None,
                node_max: float | None, *, is_int: bool) -> Parameter:
        name = leaf.path
        self.check_numeric_parent(name, depends_on)
        if not is_int:
            raise SearchSpaceError(
                f"parameter '{name}': '/ N' with depends_on derives an integer (parent // N), but the leaf is a float."
            )
        if cond.multiple_of is None:
            raise SearchSpaceError(f"parameter '{name}': a derived value needs '/ N' in its math_cond.")
        divisor = cond.multiple_of
        if divisor != int(divisor):
            raise SearchSpaceError(f"parameter '{name}': an integer cannot be derived as parent // {divisor}.")
        divisor = int(divisor)
        lim_low, lim_high = limits_of(node_min, node_max, replace(cond, multiple_of=None), name=name)
        low, high = _inclusive(lim_low, lim_high, is_int=True)
        relation = "//"
        searched, value = self.parent(name, depends_on, purpose=f"math_cond '{cond.text}'")
        if searched:
            return Parameter(
                name=name, kind=ir.INT, default=leaf.default, low=low, high=high,
                parent=depends_on, relation=relation, divisor=divisor, condition=f"= {depends_on} {relation} {divisor}",
                why=f"derived, not drawn: {depends_on} {relation} {divisor}", tao_type=leaf.type,
            )
        derived = int(value // divisor)
        if (low is not None and derived < low) or (high is not None and derived > high):
            raise SearchSpaceError(
                f"parameter '{name}': {depends_on} (fixed at {value!r}) {relation} {divisor} = {derived} lies outside "
                f"its limits {describe_limits(lim_low, lim_high)}."
            )
        return Parameter(
            name=name, kind=ir.INT, default=leaf.default, low=derived, high=derived,
            condition=f"= {depends_on} {relation} {divisor}",
            why=f"constant {derived} = {depends_on} (fixed at {value!r}) {relation} {divisor}", tao_type=leaf.type,
        )

    # -- choices ---------------------------------------------------------------------------------
    def categorical(self, leaf: SchemaLeaf, custom: Mapping[str, Any]) -> Parameter:
        name = leaf.path
        cond = self._cond(leaf, custom)
        self._no_dependency(leaf, custom, cond, "categorical")
        if leaf.type == "string" and not schema_options(leaf) and custom.get("options") is None:
            raise SearchSpaceError(
                f"parameter '{name}' is a free-text string (no enum/valid_options) and cannot be searched."
            )
        if leaf.type == "ordered_int":
            cast = lambda value: cast_int(value, name=name)  # noqa: E731
        else:
            cast = lambda value: scalar_option(value, name=name)  # noqa: E731
        choices, weights, notes = resolve_choices(leaf, custom, name=name, cast=cast)
        kept = tuple(c for c in choices if not isinstance(c, (int, float)) or isinstance(c, bool) or cond.holds(c))
        if len(kept) != len(choices):
            if not kept:
                raise SearchSpaceError(f"parameter '{name}': no option satisfies math_cond '{cond.text}'.")
            if weights is not None:
                weights = tuple(w for c, w in zip(choices, weights) if c in kept)
                weights = tuple(w / sum(weights) for w in weights)
            notes.append(f"math_cond '{cond.text}' removes {[c for c in choices if c not in kept]}")
            choices = kept
        label = {"ordered": "ordered options", "ordered_int": "ordered integer options"}.get(leaf.type, "")
        return Parameter(
            name=name, kind=ir.CATEGORICAL, default=leaf.default, choices=choices, weights=weights,
            condition=cond.text, why=join_notes([label, *notes]) or "uniform over the options", tao_type=leaf.type,
        )

    def boolean(self, leaf: SchemaLeaf, custom: Mapping[str, Any]) -> Parameter:
        name = leaf.path
        choices, weights, notes = resolve_choices(
            leaf, custom, name=name, cast=lambda value: cast_bool(value, name=name), fallback=(False, True),
        )
        default = leaf.default if isinstance(leaf.default, bool) or leaf.default is None else cast_bool(leaf.default, name=name)
        return Parameter(
            name=name, kind=ir.BOOL, default=default, choices=choices, weights=weights,
            why=join_notes(notes) or "true or false, equally likely", tao_type=leaf.type,
        )

    # -- lists -----------------------------------------------------------------------------------
def _inclusive(low: Any, high: Any, *, is_int: bool) -> tuple[Any, Any]:
    """Inclusive numeric bounds from `Bound`s (None = unbounded)."""
    out_low = out_high = None
    if low is not None:
        out_low = low.value
        if not low.inclusive:
            out_low = math.floor(out_low) + 1 if is_int else math.nextafter(out_low, math.inf)
        elif is_int:
            out_low = math.ceil(out_low)
    if high is not None:
        out_high = high.value
        if not high.inclusive:
            out_high = math.ceil(out_high) - 1 if is_int else math.nextafter(out_high, -math.inf)
        elif is_int:
            out_high = math.floor(out_high)
    return out_low, out_high
