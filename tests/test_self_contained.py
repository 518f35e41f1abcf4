"""The tests need nothing outside this repository, and their only skips are the ones docs/testing.md names:
tests that need a GPU or TensorRT (and ModelOpt, NVIDIA's GPU quantizer) on a machine without them, the
checks against TAO's full original files unless `HPO_TAO_REFERENCE` names their folder, and the live comparison
with the EfficientViT release unless `HPO_EFFICIENTVIT_REFERENCE` names its source. Everything else a test
needs is in this repository or set up by `scripts/setup.sh`, so a test that cannot find it fails instead of
passing quietly as skipped.

Checked statically over tests/ (a fresh clone in an empty folder is the lead's check of the same promise): no
path climbs above the repository (`Path(__file__).parents[N]`, a sibling `shared/` folder); every
`pytest.skip(...)` and `skipif(..., reason=...)` names one of those needs; every `pytest.importorskip(...)`
imports a dependency `pyproject.toml` declares (setup.sh installs them all, so it never skips after it)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
OWN_PACKAGES = {"hpo", "mask2former", "skillkit", "tests", "benchmarks"}
# A skip reason must name what the test needs, and only these needs may skip.
ALLOWED_NEEDS = ("GPU", "CUDA", "TensorRT", "tensorrt", "ModelOpt", "HPO_TAO_REFERENCE", "TAO's full original files",
                 "HPO_EFFICIENTVIT_REFERENCE")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions() -> set[str]:
    """Names of the project's dependencies and test extras, as pyproject.toml's [project] table lists them."""
    text = (REPO / "pyproject.toml").read_text()
    project = text[text.index("[project]"):text.index("[project.scripts]")]
    names = set()
    for block in re.findall(r"(?:^dependencies|^test) = \[(.*?)^\]", project, flags=re.S | re.M):
        names |= {_normalize(m) for m in re.findall(r'^\s*"([A-Za-z0-9_.\-]+)', block, flags=re.M)}
    return names


def _text(node: ast.expr | None) -> str:
    """The constant text of a reason (the literal parts of an f-string)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(value) for value in node.values if isinstance(value, ast.Constant))
    return ""


def _called(node: ast.Call) -> str:
    """'pytest.skip' for pytest.skip(...), 'pytest.mark.skipif' for @pytest.mark.skipif(...), else ''."""
    parts = []
    func: ast.expr = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def skip_calls() -> list[tuple[str, str, ast.Call]]:
    """(where, called name, call) of every skip, skipif and importorskip in tests/."""
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                name = _called(node)
                if name in ("pytest.skip", "pytest.mark.skipif", "pytest.importorskip"):
                    found.append((f"{path.relative_to(REPO)}:{node.lineno}", name, node))
    return found


def test_every_skip_names_a_gpu_tensorrt_or_tao_reference_need() -> None:
    calls = [(where, name, call) for where, name, call in skip_calls() if name != "pytest.importorskip"]
    assert calls  # the GPU and HPO_TAO_REFERENCE skips are found
    wrong = []
    for where, name, call in calls:
        reason = next((kw.value for kw in call.keywords if kw.arg in ("reason", "msg")), None)
        if reason is None and name == "pytest.skip" and call.args:
            reason = call.args[0]
        text = _text(reason)
        if not any(need in text for need in ALLOWED_NEEDS):
            wrong.append(f"{where}: {name}({text!r})")
    assert not wrong, ("only a missing GPU/TensorRT or an HPO_*_REFERENCE folder may skip a test (docs/testing.md); "
                       f"anything else a test needs must make it fail: {wrong}")


def test_importorskip_only_imports_declared_dependencies() -> None:
    declared = declared_distributions()
    assert {"torch", "ray", "pytest", "moto", "psycopg2-binary"} <= declared
    providers = importlib.metadata.packages_distributions()
    wrong = []
    for where, _name, call in skip_calls():
        if _name != "pytest.importorskip":
            continue
        module = _text(call.args[0]) if call.args else ""
        top = module.split(".")[0]
        if top in OWN_PACKAGES:
            continue
        dists = {_normalize(dist) for dist in providers.get(top, [])}
        if not dists & declared:
            wrong.append(f"{where}: importorskip({module!r}) (installed from {sorted(dists) or 'nothing'})")
    assert not wrong, f"declare these in pyproject.toml (setup.sh installs them) or mark the tests gpu: {wrong}"


def test_no_test_reaches_above_the_repository() -> None:
    """`Path(__file__).parents[N]` of a file d folders below the repository is the repository itself for
    N = d; a larger N, or a path into a sibling `shared/` folder, reads outside a fresh clone."""
    wrong = []
    for path in sorted(TESTS.rglob("*.py")):
        depth = len(path.relative_to(REPO).parts) - 1
        text = path.read_text()
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "parents" and isinstance(node.slice, ast.Constant)
                    and isinstance(node.slice.value, int) and node.slice.value > depth):
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno}: parents[{node.slice.value}]")
        # facts.py's docs name where TAO's copy sits on CI (HPO_TAO_REFERENCE); the two guards name what they forbid
        if path.name not in ("facts.py", "test_docs.py", "test_self_contained.py"):
            wrong += [f"{path.relative_to(REPO)}: names {marker}" for marker in ("../shared", "shared/reference")
                      if marker in text]
    assert not wrong, f"tests read only inside the repository (TAO's files through HPO_TAO_REFERENCE): {wrong}"
