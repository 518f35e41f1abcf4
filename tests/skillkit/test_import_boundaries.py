"""`hpo` and `mask2former` are siblings over `skillkit`: neither imports the other, the kit imports neither.

The scan reads every module's AST, so it sees what a runtime check would miss: imports inside functions,
imports under `if TYPE_CHECKING:`, and modules named by a literal string for `importlib.import_module`
(a registry such as `COMMAND_MODULES` or a lazy `_EXPORTS` table counts as an import of every module it
names). A second check runs the real entry points in a fresh interpreter and looks at `sys.modules`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import NamedTuple

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hpo", "mask2former", "skillkit")
# package -> packages it must never import
FORBIDDEN = {"hpo": {"mask2former"}, "mask2former": {"hpo"}, "skillkit": {"hpo", "mask2former"}}
# Layers inside a package: subpackage -> subpackages it must never import. The sweep config (names, rules,
# resolution: `hpo.sweep.algorithms`) sits below the backends, which build what it names; tracking sits below
# promotion (the best candidate both report is `hpo.trials.candidates`'s).
LAYERS = {"hpo.sweep": {"hpo.backends"}, "hpo.tracking": {"hpo.promotion"}}


class Import(NamedTuple):
    module: str  # the importing module, dotted
    line: int
    target: str  # the imported module, dotted
    how: str  # "import", "from", "literal"


def module_name(path: Path, root: Path = REPO_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module_path(text: str) -> bool:
    """True when `text` names an existing module or package of this repository (e.g. 'hpo.driver.commands')."""
    parts = text.split(".")
    if parts[0] not in PACKAGES or not all(part.isidentifier() for part in parts):
        return False
    base = REPO_ROOT.joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path, root: Path = REPO_ROOT) -> Iterator[Import]:
    """Every import of the module at `path` (its dotted name taken relative to `root`)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    import_calls = {
        id(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and node.args
        and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, node.lineno, alias.name, "import")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield Import(name, node.lineno, target, "from")
            for alias in node.names:  # `from hpo import errors` imports the module hpo.errors
                if is_module_path(f"{target}.{alias.name}"):
                    yield Import(name, node.lineno, f"{target}.{alias.name}", "from")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            # importlib.import_module("x.y"), __import__("x.y") and registries of module names ("x.y" or
            # "x.y:attr"); a bare top-level name counts only as an import call's argument ("mask2former" is
            # also a model name)
            text = node.value.split(":", 1)[0]
            if is_module_path(text) and ("." in text or id(node) in import_calls):
                yield Import(name, node.lineno, text, "literal")


@cache
def scanned(path: Path, root: Path = REPO_ROOT) -> tuple[Import, ...]:
    """`imports_of`, parsed once per test session (the package and the layer checks read the same files)."""
    return tuple(imports_of(path, root))


def all_modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (REPO_ROOT / package).rglob("*.py"))


def violations() -> list[str]:
    found = []
    for path in all_modules():
        for item in scanned(path, REPO_ROOT):
            top = item.module.split(".")[0]
            target_top = item.target.split(".")[0]
            if target_top in FORBIDDEN[top]:
                found.append(f"{path.relative_to(REPO_ROOT)}:{item.line}: {item.module} -> {item.target} ({item.how})")
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layer_violations(paths: list[Path], root: Path = REPO_ROOT) -> list[str]:
    found = []
    for path in paths:
        for item in scanned(path, root):
            for layer, below_not in LAYERS.items():
                if within(item.module, layer) and any(within(item.target, other) for other in below_not):
                    found.append(f"{path.relative_to(root)}:{item.line}: {item.module} -> {item.target} ({item.how})")
    return found


def test_every_package_is_scanned() -> None:
    counts = {package: sum(1 for path in all_modules() if path.parts[len(REPO_ROOT.parts)] == package)
              for package in PACKAGES}
    assert all(count > 5 for count in counts.values()), counts


def test_no_package_imports_its_sibling_or_upward() -> None:
    found = violations()
    assert not found, "imports across the engine/trainer boundary:\n" + "\n".join(found)


def test_no_layer_imports_a_layer_above_it() -> None:
    """hpo.sweep never imports hpo.backends; hpo.tracking never imports hpo.promotion (LAYERS)."""
    assert all(any(within(module_name(path), layer) for path in all_modules()) for layer in LAYERS)
    found = layer_violations(all_modules())
    assert not found, "imports against the layering (LAYERS):\n" + "\n".join(found)


def test_the_layer_rule_catches_a_function_level_backend_import(tmp_path: Path) -> None:
    probe = tmp_path / "hpo" / "sweep" / "layer_probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from hpo.sweep import algorithms\n"
                     "def later():\n"
                     "    from ..backends import algorithms as builders\n"
                     "    return builders\n")
    found = layer_violations([probe], root=tmp_path)
    assert found and all(line.startswith("hpo/sweep/layer_probe.py:3: hpo.sweep.layer_probe -> hpo.backends")
                         for line in found), found


def test_the_scan_sees_function_level_and_literal_imports(tmp_path: Path) -> None:
    """The scanner itself must catch the sneaky forms, or the boundary test proves nothing."""
    source = (
        '"""hpo.driver.commands in a docstring is not an import."""\n'
        "import importlib\n"
        "def later():\n"
        "    from mask2former.training import trainer\n"
        "    return importlib.import_module('mask2former.cli')\n"
        "REGISTRY = {'x': 'mask2former.deploy.backends'}\n"
        "from ..errors import UserError\n"
        "from hpo import sweep\n"
        "NAME = 'mask2former'\n"
        "__import__('hpo')\n"
    )
    probe = tmp_path / "skillkit" / "spec" / "scan_probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(source)
    found = list(imports_of(probe, root=tmp_path))
    targets = {(item.target, item.how) for item in found}
    assert ("mask2former.training", "from") in targets
    assert ("mask2former.training.trainer", "from") in targets
    assert ("mask2former.cli", "literal") in targets
    assert ("mask2former.deploy.backends", "literal") in targets
    assert ("skillkit.errors", "from") in targets  # relative import resolved against the module's package
    assert ("hpo.sweep", "from") in targets
    assert ("hpo", "literal") in targets and ("mask2former", "literal") not in targets
    assert not any(item.target == "hpo.driver.commands" for item in found)


ENTRY_POINT_CHECK = r"""
import json, sys
import {module}
{extra}
print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] in ('hpo', 'mask2former', 'boto3', 'botocore'))))
"""


def _loaded_by(module: str, extra: str = "") -> set[str]:
    code = ENTRY_POINT_CHECK.format(module=module, extra=extra)
    output = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in json.loads(output.stdout.strip().splitlines()[-1])}


def test_trainer_cli_loads_neither_the_engine_nor_boto3() -> None:
    loaded = _loaded_by("mask2former.cli", "mask2former.cli.build_parser()")
    assert loaded == {"mask2former"}, loaded


def test_trainer_data_and_spec_path_loads_neither_the_engine_nor_boto3() -> None:
    """The modules a training start imports beyond the CLI (spec loading, dataset archives): an archive
    import of the engine's storage once pulled boto3 into every trainer start."""
    loaded = _loaded_by("mask2former.actions.common", "import mask2former.data.archive")
    assert not loaded & {"hpo", "boto3", "botocore"}, loaded


def test_loading_a_sweep_config_loads_no_backend() -> None:
    code = ("import json, sys\nfrom hpo.sweep import algorithms, load_sweep_config, sweep_config_from_dict\n"
            "print(json.dumps(sorted(name for name in sys.modules if name.startswith('hpo.'))))")
    output = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(output.stdout.strip().splitlines()[-1])
    assert "hpo.sweep.config_rules" in loaded and not [name for name in loaded if name.startswith("hpo.backends")], loaded


def test_engine_cli_loads_no_trainer_module() -> None:
    loaded = _loaded_by("hpo.cli", "hpo.cli.build_parser()")
    assert "mask2former" not in loaded, loaded
