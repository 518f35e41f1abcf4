"""TAO compatibility facts: a compact, committed record of NVIDIA TAO's packaged Mask2Former skill files.

The tests must not need anything outside the repository, yet several of them check compatibility with the
files TAO ships (its train/evaluate/export schemas, manifest, spec templates and skill_info.yaml). This
module keeps what those tests rely on -- key names, type names, defaults, bounds, `math_cond` forms,
`depends_on`, AutoML lists, template keys and values, the skill card's actions and data sources -- in
`facts.json` beside it, and rebuilds TAO-format files from it, so the same tests run on a fresh clone.
Titles and descriptions (prose) are left out; everything a reader or validator acts on is kept, including
TAO's quirks (`Infinity` maxima, the stray `automl_disabled_parameters` pseudo-property).

`facts.json` is generated, never edited by hand:

    python tests/tao_compat/facts.py --reference ../shared/reference/tao-mask2former

and when the variable `HPO_TAO_REFERENCE` names TAO's original folder, the tests also run on the full files
and check that `facts.json` is what this script derives from them (`test_tao_facts.py`).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

#: Environment variable naming the folder of TAO's original files (`.ci/run` sets it).
REFERENCE_ENV = "HPO_TAO_REFERENCE"
FACTS_FILE = Path(__file__).with_name("facts.json")
SCHEMA_ACTIONS = ("train", "evaluate", "export")
BASE_SCHEMA = "train"
TEMPLATES = tuple(f"spec_template_{name}.yaml" for name in (
    "train", "evaluate", "inference", "export", "gen_trt_engine", "quantize",
    "deploy_evaluate", "deploy_inference", "deploy_gen_trt_engine"))
PROSE = ("title", "description")


# -- reading TAO's files into facts --------------------------------------------------------------------------

def _schema_nodes(node: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, node without prose or children) for every property, parents before children."""
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        if not isinstance(child, dict):  # TAO's stray pseudo-property (a list): kept as it is
            yield path, child
            continue
        yield path, {k: v for k, v in child.items() if k not in PROSE and k != "properties"}
        if "properties" in child:
            yield from _schema_nodes(child, f"{path}.")


def _flat_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "top": {k: v for k, v in schema.items() if k not in PROSE and k != "properties"},
        "nodes": dict(_schema_nodes(schema)),
        "collections": sorted(path for path, node in _schema_nodes(schema) if isinstance(node, dict)
                              and "properties" in _lookup(schema, path)),
    }


def _lookup(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for part in path.split("."):
        node = node["properties"][part]
    return node


def _flatten(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted leaves of a YAML tree; an empty mapping is a leaf of its own."""
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], tree


def _delta(base: dict[str, Any], other: dict[str, Any], like: str) -> dict[str, Any]:
    """`other` as the differences from `base` (TAO repeats most of a file in its siblings)."""
    return {"like": like, "set": {k: v for k, v in other.items() if base.get(k, _MISSING) != v},
            "removed": [k for k in base if k not in other]}


def _undelta(table: dict[str, Any], name: str) -> dict[str, Any]:
    """Inverse of `_delta` on the table of named entries holding `name`."""
    entry = table[name]
    if not isinstance(entry, dict) or set(entry) != {"like", "set", "removed"}:
        return copy.deepcopy(entry)
    result = {k: v for k, v in _undelta(table, entry["like"]).items() if k not in entry["removed"]}
    result.update(copy.deepcopy(entry["set"]))
    return result


_MISSING = object()


def build_facts(reference: Path) -> dict[str, Any]:
    """The facts of TAO's folder `reference` (schemas/, references/)."""
    reference = Path(reference)
    schemas: dict[str, Any] = {}
    for action in SCHEMA_ACTIONS:
        flat = _flat_schema(json.loads((reference / "schemas" / f"{action}.schema.json").read_text()))
        if action == BASE_SCHEMA:
            schemas[action] = flat
            continue
        # Other actions' schemas repeat the train schema but for their own section: keep the differences.
        base = schemas[BASE_SCHEMA]
        schemas[action] = {part: _delta(base[part], flat[part], BASE_SCHEMA) for part in ("top", "nodes")}
        schemas[action]["collections"] = flat["collections"]
    templates: dict[str, Any] = {}
    for name in TEMPLATES:
        path = reference / "references" / name
        if path.is_file():
            flat = dict(_flatten(yaml.safe_load(path.read_text())))
            # The smallest form: the full table, or the differences from a template already recorded.
            forms = [flat] + [_delta(_undelta(templates, base), flat, base) for base in templates]
            templates[name] = min(forms, key=lambda form: len(json.dumps(form)))
    manifest = json.loads((reference / "schemas" / "manifest.json").read_text())
    actions = manifest.get("actions") or {}
    if BASE_SCHEMA in actions:
        manifest["actions"] = {name: entry if name == BASE_SCHEMA else _delta(actions[BASE_SCHEMA], entry, BASE_SCHEMA)
                               for name, entry in actions.items()}
    return {
        "about": "Generated by tests/tao_compat/facts.py from NVIDIA TAO's packaged Mask2Former skill files; "
                 "do not edit. Prose (titles, descriptions) is left out.",
        "source": _source_line(reference),
        "schemas": schemas,
        "manifest": manifest,
        "templates": templates,
        "skill_info": yaml.safe_load((reference / "references" / "skill_info.yaml").read_text()),
    }


def _source_line(reference: Path) -> str:
    """Where the files come from, as the folder's README says it (the parenthesis naming the commit)."""
    readme = reference / "README.md"
    text = " ".join(readme.read_text().split()) if readme.is_file() else ""
    found = re.search(r"\(([^()]*commit[^()]*)\)", text)
    return found.group(1) if found else "unknown"


def full_reference() -> Path:
    """TAO's original folder from `HPO_TAO_REFERENCE`. In a test: skips without the variable (naming it), fails
    when it names a folder without TAO's files (the run asked for them)."""
    import pytest

    value = os.environ.get(REFERENCE_ENV)
    if not value:
        pytest.skip(f"TAO's full original files: set {REFERENCE_ENV} to their tao-mask2former folder "
                    "(.ci/run sets it to ../shared/reference/tao-mask2former)")
    folder = Path(value)
    if not (folder / "schemas" / "train.schema.json").is_file():
        pytest.fail(f"{REFERENCE_ENV}={value} does not hold TAO's files (no schemas/train.schema.json there)")
    return folder


# -- facts back into TAO-format files ------------------------------------------------------------------------

def load_facts(path: Path = FACTS_FILE) -> dict[str, Any]:
    return json.loads(path.read_text())


def schema_nodes(facts: dict[str, Any], action: str) -> dict[str, Any]:
    """The flat node table of `action`'s schema: dotted path -> the node without prose or children."""
    return _undelta({name: entry["nodes"] for name, entry in facts["schemas"].items()}, action)


def rebuild_schema(facts: dict[str, Any], action: str) -> dict[str, Any]:
    """TAO's `<action>.schema.json` as a dict, without prose."""
    schema = _undelta({name: entry["top"] for name, entry in facts["schemas"].items()}, action)
    schema["properties"] = {}
    collections = set(facts["schemas"][action]["collections"])
    for path, node in schema_nodes(facts, action).items():
        parent = schema
        *parents, name = path.split(".")
        for part in parents:
            parent = parent["properties"][part]
        if path in collections:
            node = {**node, "properties": {}}
        parent["properties"][name] = node
    return schema


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = tree
        *parents, name = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[name] = copy.deepcopy(value)
    return tree


def rebuild_template(facts: dict[str, Any], name: str) -> dict[str, Any]:
    return _unflatten(_undelta(facts["templates"], name))


def rebuild_manifest(facts: dict[str, Any]) -> dict[str, Any]:
    manifest = copy.deepcopy(facts["manifest"])
    actions = manifest.get("actions") or {}
    manifest["actions"] = {name: _undelta(actions, name) for name in actions}
    return manifest


def materialize(facts: dict[str, Any], folder: Path) -> Path:
    """Write TAO's folder layout (schemas/, references/) rebuilt from the facts into `folder`."""
    folder = Path(folder)
    (folder / "schemas").mkdir(parents=True, exist_ok=True)
    (folder / "references").mkdir(parents=True, exist_ok=True)
    for action in facts["schemas"]:
        (folder / "schemas" / f"{action}.schema.json").write_text(json.dumps(rebuild_schema(facts, action), indent=1))
    (folder / "schemas" / "manifest.json").write_text(json.dumps(rebuild_manifest(facts), indent=1))
    for name in facts["templates"]:
        (folder / "references" / name).write_text(yaml.safe_dump(rebuild_template(facts, name), sort_keys=False))
    (folder / "references" / "skill_info.yaml").write_text(yaml.safe_dump(facts["skill_info"], sort_keys=False))
    return folder


def dumps(facts: dict[str, Any], *, depth: int = 0, expand: int = 4) -> str:
    """The committed text: mappings expanded to `expand` levels, anything deeper on one line (diffable)."""
    if not isinstance(facts, dict) or not facts or depth >= expand:
        return json.dumps(facts, ensure_ascii=False)
    pad = " " * (depth + 1)
    body = ",\n".join(f"{pad}{json.dumps(key)}: {dumps(value, depth=depth + 1, expand=expand)}" for key, value in facts.items())
    return "{\n" + body + "\n" + " " * depth + "}" + ("\n" if depth == 0 else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True, help="TAO's tao-mask2former folder (schemas/, references/)")
    parser.add_argument("--out", default=str(FACTS_FILE), help=f"where to write (default {FACTS_FILE.name} here)")
    args = parser.parse_args(argv)
    facts = build_facts(Path(args.reference))
    Path(args.out).write_text(dumps(facts))
    print(f"wrote {args.out} ({len(dumps(facts)) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
