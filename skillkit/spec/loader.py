"""Load a spec: YAML (safe) merged onto the action's template, dotted overrides, then validation."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from skillkit.errors import SpecError
from skillkit.skill_dir import ACTIONS, SkillDir
from skillkit.spec.class_count import ClassCountRule, class_count_problem
from skillkit.spec.dotted import apply_overrides, deep_merge
from skillkit.spec.validate import missing_mandatory, raise_if_problems, schema_problems
from skillkit.spec.yaml_io import read_yaml_file


def _skill(skill_dir: SkillDir | str | os.PathLike[str] | None) -> SkillDir:
    return skill_dir if isinstance(skill_dir, SkillDir) else SkillDir(skill_dir)


def read_spec_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    data = read_yaml_file(Path(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"spec file '{path}' must hold a mapping of sections, got {type(data).__name__}.")
    return data


def validate_spec(
    spec: Mapping[str, Any],
    action: str = "train",
    skill_dir: SkillDir | str | os.PathLike[str] | None = None,
    *,
    source: str = "spec",
    check_mandatory: bool = True,
    check_classes: bool = True,
) -> None:
    """Raise one SpecError listing every problem of a complete spec for `action`."""
    skill = _skill(skill_dir)
    if action not in ACTIONS:
        raise SpecError(f"unknown action '{action}'; allowed: {', '.join(ACTIONS)}.")
    problems = [_with_shorthand_hint(problem, skill) for problem in schema_problems(spec, skill.schema(action))]
    if check_mandatory:
        problems += [
            f"'{path}' = '???': action '{action}' needs a value here"
            for path in missing_mandatory(spec, action, action_sections=set(ACTIONS))
        ]
    rule = ClassCountRule.from_info(skill.info) if check_classes and not problems else None
    if rule is not None and action in rule.actions:
        problem = class_count_problem(spec, rule)
        if problem:
            problems.append(problem)
    raise_if_problems(problems, source=source)


def _with_shorthand_hint(problem: str, skill: SkillDir) -> str:
    """Point TAO shorthand names (`learning_rate`, `num_epochs`...) used as keys to their real place."""
    if ": unknown key" not in problem:
        return problem
    key = problem.split("'")[1].rsplit(".", 1)[-1]
    target = (skill.info.get("spec_shorthand_keys") or {}).get(key)
    return f"{problem} ('{key}' is shorthand for '{target}')" if target else problem


def merge_spec(
    path: str | os.PathLike[str] | None,
    action: str,
    overrides: Iterable[str],
    skill: SkillDir,
) -> dict[str, Any]:
    """Template defaults, then the user's file, then overrides; not validated."""
    spec = copy.deepcopy(skill.template(action))
    if path is not None:
        spec = deep_merge(spec, read_spec_file(path))
    return apply_overrides(spec, overrides)


def load_spec(
    path: str | os.PathLike[str] | None,
    action: str = "train",
    overrides: Iterable[str] = (),
    skill_dir: SkillDir | str | os.PathLike[str] | None = None,
    *,
    check_mandatory: bool = True,
    check_classes: bool = True,
) -> dict[str, Any]:
    """The complete, validated spec dict for `action`."""
    skill = _skill(skill_dir)
    if action not in ACTIONS:
        raise SpecError(f"unknown action '{action}'; allowed: {', '.join(ACTIONS)}.")
    spec = merge_spec(path, action, list(overrides), skill)
    source = str(path) if path is not None else f"<{action} template>"
    validate_spec(spec, action, skill, source=source, check_mandatory=check_mandatory, check_classes=check_classes)
    return spec


def spec_source_name(path: str | os.PathLike[str] | None) -> str:
    return str(Path(path)) if path else "<template>"
