"""The README's exit-code table is the code's: every error class the project defines is listed in the row of
its exit code, and every class the table names exists with that code.

All modules of the packages are imported, so a class added anywhere (and its exit code) cannot be missed.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("skillkit", "hpo", "mask2former")
TABLE_HEADER = "| exit code | meaning | error classes |"


def _error_root() -> type:
    from skillkit.errors import HpoError

    return HpoError


def _all_error_classes() -> dict[str, int]:
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            importlib.import_module(module.name)
    found: dict[str, int] = {}
    pending = [_error_root()]
    while pending:
        cls = pending.pop()
        assert cls.__name__ not in found or found[cls.__name__] == cls.exit_code, f"two classes named {cls.__name__}"
        found[cls.__name__] = int(cls.exit_code)
        pending.extend(cls.__subclasses__())
    return found


def readme_table() -> dict[int, set[str]]:
    """exit code -> class names (in backticks) of the README's table."""
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert TABLE_HEADER in lines, f"the README has no exit-code table starting with {TABLE_HEADER!r}"
    rows: dict[int, set[str]] = {}
    for line in lines[lines.index(TABLE_HEADER) + 2:]:
        if not line.startswith("|"):
            break
        code, _meaning, classes = (cell.strip() for cell in line.strip("|").split("|"))
        rows[int(code)] = set(re.findall(r"`(\w+)`", classes))
    return rows


@pytest.fixture(scope="module")
def error_classes() -> dict[str, int]:
    return _all_error_classes()


def test_every_error_class_is_in_its_row(error_classes: dict[str, int]) -> None:
    rows = readme_table()
    for name, code in sorted(error_classes.items()):
        assert code in rows, f"{name} exits {code}, a code the README's table does not list"
        assert name in rows[code], f"{name} exits {code}: name it in that row of the README's table"


def test_every_class_in_the_table_exists_with_that_code(error_classes: dict[str, int]) -> None:
    for code, names in readme_table().items():
        for name in names:
            assert error_classes.get(name) == code, f"the README lists {name} under {code}, the code says {error_classes.get(name)}"


def test_the_table_lists_no_code_nothing_exits_with() -> None:
    rows = readme_table()
    assert set(rows) - {0, 1, 2, 130} <= set(_all_error_classes().values())
