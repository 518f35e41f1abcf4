"""Validate a spec against a TAO-format action schema with an extended `jsonschema` validator.

TAO schemas are not plain JSON Schema: leaves use TAO type names (`int`, `float`, `categorical`,
`collection`, `list`...), bounds may be `Infinity`, and `math_cond` carries extra rules. We extend
Draft 2020-12 with TAO-aware `type`, `properties` (unknown keys with did-you-mean), `math_cond` and
our `x_items` list rules, then run one pass for conditions relative to another parameter
(`depends_on`), which need the whole spec. Every problem is reported at once, with its dotted path,
the offending value and what is allowed.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from skillkit.errors import SchemaError, SpecError
from skillkit.spec.dotted import get_dotted
from skillkit.spec.math_cond_check import parse_math_cond, relative_violations, static_violations

MANDATORY = "???"

_INT_TYPES = {"int", "integer", "ordered_int"}
_FLOAT_TYPES = {"float", "number"}
_LIST_TYPES = {"list", "list_1_backbone", "list_1_normal", "list_2", "list_3", "subset_list", "optional_list", "array"}
_OBJECT_TYPES = {"collection", "object", "dict"}
_STRING_TYPES = {"string", "str"}
_BOOL_TYPES = {"bool", "boolean"}
_ANY_SCALAR_TYPES = {"categorical", "ordered"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()


def _type_ok(type_name: str, value: Any) -> bool:
    if type_name in _INT_TYPES:
        return _is_int(value) and not isinstance(value, float)
    if type_name in _FLOAT_TYPES:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name in _LIST_TYPES:
        return isinstance(value, list)
    if type_name in _OBJECT_TYPES:
        return isinstance(value, Mapping)
    if type_name in _STRING_TYPES:
        return isinstance(value, str)
    if type_name in _BOOL_TYPES:
        return isinstance(value, bool)
    if type_name in _ANY_SCALAR_TYPES:
        return value is None or isinstance(value, (str, int, float, bool))
    return True  # a type name we don't know constrains nothing; the schema reader reports it


def _allows_null(schema: Mapping[str, Any]) -> bool:
    return bool(schema.get("x_nullable")) or "default" not in schema or schema.get("default") is None


def _tao_type(validator: Any, type_name: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    names = type_name if isinstance(type_name, list) else [type_name]
    if instance is None and _allows_null(schema):
        return
    if not any(_type_ok(str(name), instance) for name in names):
        yield ValidationError(f"must be of type {' or '.join(map(str, names))}, got {type(instance).__name__}")


def _tao_properties(validator: Any, properties: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if not isinstance(instance, Mapping):
        return
    known = {key: sub for key, sub in properties.items() if isinstance(sub, Mapping)}
    for key, subschema in known.items():
        if key in instance:
            yield from validator.descend(instance[key], subschema, path=key, schema_path=key)
    if schema.get("x_free_form"):
        return
    for key in instance:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f"; allowed keys here: {', '.join(sorted(known))}"
            error = ValidationError(f"unknown key{hint}")
            error.path.appendleft(key)
            error.validator = "unknown_key"
            yield error


def _tao_math_cond(validator: Any, condition: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    parsed = parse_math_cond(str(condition))
    has_parent = bool(schema.get("depends_on") or schema.get("parent_param"))
    for problem in static_violations(parsed, instance, has_parent=has_parent):
        yield ValidationError(f"{problem} (math_cond '{condition}')")


def _list_rules(validator: Any, rules: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if not isinstance(instance, list) or not isinstance(rules, Mapping):
        return
    for index, item in enumerate(instance):
        item_type = rules.get("type")
        if item_type and not _type_ok(str(item_type), item):
            yield ValidationError(f"item {index} ({item!r}) must be of type {item_type}")
            continue
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            if "minimum" in rules and item < rules["minimum"]:
                yield ValidationError(f"item {index} ({item!r}) must be >= {rules['minimum']}")
            if "maximum" in rules and item > rules["maximum"]:
                yield ValidationError(f"item {index} ({item!r}) must be <= {rules['maximum']}")
        if "enum" in rules and item not in rules["enum"]:
            yield ValidationError(f"item {index} ({item!r}) must be one of {rules['enum']}")


def _min_items(validator: Any, count: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if isinstance(instance, list) and len(instance) < count:
        yield ValidationError(f"needs at least {count} item(s), got {len(instance)}")


def _max_items(validator: Any, count: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if isinstance(instance, list) and len(instance) > count:
        yield ValidationError(f"takes at most {count} item(s), got {len(instance)}")


def _numeric_bound(keyword: str):
    standard = Draft202012Validator.VALIDATORS[keyword]

    def check(validator: Any, bound: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
        if isinstance(bound, str):  # some writers quote TAO's tokens: "Infinity", "-inf", "1e-3"
            try:
                bound = float(bound)
            except ValueError:
                raise SchemaError(f"schema bound {keyword} = {bound!r} is not a number.") from None
        if isinstance(bound, (int, float)) and math.isinf(bound):
            return  # Infinity: unbounded on that side
        for error in standard(validator, bound, instance, schema):
            error.message = f"must be {'>=' if keyword == 'minimum' else '<='} {bound}"
            yield error

    return check


TaoValidator = jsonschema.validators.extend(
    Draft202012Validator,
    validators={
        "type": _tao_type,
        "properties": _tao_properties,
        "math_cond": _tao_math_cond,
        "x_items": _list_rules,
        "x_min_items": _min_items,
        "x_max_items": _max_items,
        "minimum": _numeric_bound("minimum"),
        "maximum": _numeric_bound("maximum"),
        "required": lambda *args: iter(()),  # specs are merged onto complete templates; missing values are '???'
    },
)


def iter_leaf_schemas(schema: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(dotted path, leaf schema) for every leaf of a TAO schema, collections descended."""
    for key, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, Mapping):
            continue
        path = f"{prefix}{key}"
        if sub.get("type") in ("collection", "object") and isinstance(sub.get("properties"), Mapping) and sub["properties"]:
            yield from iter_leaf_schemas(sub, path + ".")
        else:
            yield path, sub


def _describe_allowed(schema: Mapping[str, Any]) -> str:
    parts = []
    type_name = schema.get("type")
    if type_name:
        parts.append(str(type_name))
    if "enum" in schema:
        parts.append(f"one of {schema['enum']}")
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None or high is not None:
        parts.append(f"in [{'-inf' if low is None else low}, {'inf' if high is None else high}]")
    if schema.get("math_cond"):
        cond = schema["math_cond"]
        parts.append(f"math_cond '{cond}'" + (f" on {schema['depends_on']}" if schema.get("depends_on") else ""))
    if schema.get("pattern"):
        parts.append(f"matching {schema['pattern']!r}")
    return ", ".join(parts)


def _format(error: ValidationError) -> str:
    path = ".".join(str(part) for part in error.absolute_path) or "<root>"
    if error.validator == "unknown_key":
        return f"'{path}': {error.message}"
    allowed = _describe_allowed(error.schema) if isinstance(error.schema, Mapping) else ""
    message = error.message
    if error.validator == "enum":
        message = f"must be one of {error.validator_value}"
    elif error.validator == "pattern":
        message = f"must match {error.validator_value!r}"
    suffix = f" (allowed: {allowed})" if allowed and error.validator != "enum" else ""
    return f"'{path}' = {error.instance!r}: {message}{suffix}"


def _relational_problems(spec: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    problems = []
    for path, leaf in iter_leaf_schemas(schema):
        condition, parent = leaf.get("math_cond"), leaf.get("depends_on") or leaf.get("parent_param")
        if not condition or not parent or not isinstance(parent, str):
            continue
        parsed = parse_math_cond(str(condition))
        value = get_dotted(spec, path, None)
        parent_value = get_dotted(spec, parent, None)
        for problem in relative_violations(parsed, value, parent_value):
            problems.append(f"'{path}' = {value!r}: {problem} ('{parent}', math_cond '{condition}')")
    return problems


def schema_problems(spec: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every problem of `spec` against `schema`, formatted, in path order."""
    try:
        validator = TaoValidator(schema)
        errors = sorted(validator.iter_errors(spec), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    except SchemaError:
        raise
    except jsonschema.exceptions.SchemaError as error:  # pragma: no cover - our schemas are generated
        raise SchemaError(f"the action schema itself is invalid: {error.message}") from None
    problems = [_format(error) for error in errors]
    problems.extend(_relational_problems(spec, schema))
    return problems


def missing_mandatory(spec: Mapping[str, Any], action: str, *, action_sections: set[str]) -> list[str]:
    """Dotted paths still holding '???' that `action` needs (other actions' sections are ignored)."""
    missing = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if not path and key in action_sections and key != action:
                    continue
                walk(value, f"{path}{key}.")
        elif node == MANDATORY:
            missing.append(path[:-1])

    walk(spec, "")
    if action in ("evaluate", "inference"):
        section = spec.get(action) or {}
        if section.get("trt_engine") and f"{action}.checkpoint" in missing:
            missing.remove(f"{action}.checkpoint")  # deploy side: the engine / ONNX file replaces the checkpoint
        elif section.get("checkpoint") in ("", None) and not section.get("trt_engine"):
            missing.append(f"{action}.checkpoint (or {action}.trt_engine)")
    return missing


def raise_if_problems(problems: list[str], *, source: str) -> None:
    if problems:
        listing = "\n  - ".join(problems)
        raise SpecError(f"spec '{source}' has {len(problems)} problem(s):\n  - {listing}")
