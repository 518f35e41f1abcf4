"""Safe YAML reading and writing for specs.

PyYAML follows YAML 1.1, where `1e-4` (no dot) is a *string*; every spec author means a float, so the
loader adds the YAML 1.2 float pattern. Only safe loading is ever used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from skillkit.errors import SpecError

_FLOAT_PATTERN = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class SpecLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-4` as a float."""


SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_PATTERN, list("-+0123456789."))


def parse_yaml(text: str, *, source: str) -> Any:
    """Parse YAML text; a syntax error becomes a SpecError naming the source, line and column."""
    try:
        return yaml.load(text, Loader=SpecLoader)  # noqa: S506 - SpecLoader derives from SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SpecError(f"'{source}' is not valid YAML{where}: {problem}.") from None


def read_yaml_file(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file '{path}' does not exist.")
    return parse_yaml(path.read_text(), source=str(path))


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=120)


def dump_spec(spec: dict[str, Any], path: str | Path) -> Path:
    """Write a spec as YAML (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_yaml(spec))
    return path
