"""Spec loading and validation shared by both CLIs (`hpo` and `mask2former`)."""

from hpo.spec.chain import choose_checkpoint, list_checkpoints, resolve_job_chain
from hpo.spec.class_count import check_class_count, class_count_problem
from hpo.spec.datasources import resolve_data_sources
from hpo.spec.dotted import apply_overrides, deep_merge, flatten, get_dotted, parse_override, set_dotted
from hpo.spec.loader import load_spec, merge_spec, read_spec_file, validate_spec
from hpo.spec.yaml_io import dump_spec, dump_yaml, parse_yaml, read_yaml_file

__all__ = [
    "apply_overrides", "check_class_count", "choose_checkpoint", "class_count_problem", "deep_merge", "dump_spec",
    "dump_yaml", "flatten", "get_dotted", "list_checkpoints", "load_spec", "merge_spec", "parse_override",
    "parse_yaml", "read_spec_file", "read_yaml_file", "resolve_data_sources", "resolve_job_chain", "set_dotted",
    "validate_spec",
]
