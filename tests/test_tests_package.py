"""`tests/` is a package: every helper is imported by its full name (`tests.engine.fixture_skill`), so a test
never depends on another folder's conftest having edited `sys.path` first, and two helpers cannot clash."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _modules() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


def test_every_test_folder_is_a_package() -> None:
    missing = sorted({str(path.parent.relative_to(TESTS.parent)) for path in _modules()
                      if not (path.parent / "__init__.py").is_file()})
    assert not missing, f"add an empty __init__.py to: {missing}"


def test_helpers_are_imported_by_their_package_name_and_sys_path_is_left_alone() -> None:
    helpers = {path.stem for path in _modules() if not path.stem.startswith("test_")
               and path.stem not in ("__init__", "conftest")}
    found = []
    for path in _modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            where = f"{path.relative_to(TESTS.parent)}:{getattr(node, 'lineno', '?')}"
            found += [f"{where}: import {name} (use tests.<area>.{name})" for name in names
                      if name.split(".")[0] in helpers | {"tao_compat"}]
            if (isinstance(node, ast.Attribute) and node.attr in ("insert", "append")
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "path"
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "sys"):
                found.append(f"{where}: sys.path.{node.attr}")
    assert not found, "\n".join(found)
