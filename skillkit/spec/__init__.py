"""Spec loading and validation shared by both CLIs (`hpo` and `mask2former`)."""

from skillkit.spec.class_count import ClassCountRule, check_class_count, class_count_problem
from skillkit.spec.dotted import apply_overrides, deep_merge, flatten, get_dotted, parse_override, set_dotted
from skillkit.spec.loader import load_spec, merge_spec, read_spec_file, validate_spec
from skillkit.spec.yaml_io import dump_spec, dump_yaml, parse_yaml, read_yaml_file

__all__ = [
    "ClassCountRule", "apply_overrides", "check_class_count", "class_count_problem", "deep_merge", "dump_spec", "dump_yaml", "flatten",
    "get_dotted", "load_spec", "merge_spec", "parse_override", "parse_yaml", "read_spec_file", "read_yaml_file",
    "set_dotted", "validate_spec",
]
