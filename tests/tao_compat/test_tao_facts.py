"""The committed TAO facts are faithful, and our generated skill files agree with them.

The first test needs TAO's original folder (`HPO_TAO_REFERENCE`) and checks that `facts.json` is exactly what
`facts.py` derives from it, and that the files rebuilt from the facts equal the originals but for prose.
The others run everywhere, on the facts alone.
"""

from __future__ import annotations

import json

import yaml

from tests.tao_compat.facts import (
    FACTS_FILE,
    SCHEMA_ACTIONS,
    build_facts,
    dumps,
    full_reference,
    load_facts,
    rebuild_manifest,
    rebuild_schema,
    rebuild_template,
    schema_nodes,
)


def _without_prose(node):
    if isinstance(node, dict):
        return {k: _without_prose(v) for k, v in node.items() if k not in ("title", "description")}
    if isinstance(node, list):
        return [_without_prose(v) for v in node]
    return node


def test_facts_are_what_the_script_derives_from_taos_files():
    reference = full_reference()
    facts = build_facts(reference)
    assert FACTS_FILE.read_text() == dumps(facts), (
        "tests/tao_compat/facts.json is stale: run `python tests/tao_compat/facts.py --reference "
        f"{reference}` and commit it")
    for action in SCHEMA_ACTIONS:
        original = json.loads((reference / "schemas" / f"{action}.schema.json").read_text())
        assert rebuild_schema(facts, action) == _without_prose(original), action
    assert rebuild_manifest(facts) == json.loads((reference / "schemas" / "manifest.json").read_text())
    for name in facts["templates"]:
        assert rebuild_template(facts, name) == yaml.safe_load((reference / "references" / name).read_text()), name


def test_our_train_schema_keeps_taos_automl_parameters(repo_root):
    """TAO's ten AutoML parameters are AutoML parameters of ours, with TAO's type and default, and a range
    holding TAO's default (ours may be narrower where TAO's is wider than anyone trains with, or wider where
    small models need it)."""
    facts = load_facts()
    theirs = schema_nodes(facts, "train")
    schema = json.loads((repo_root / "schemas" / "train.schema.json").read_text())
    ours = _nodes(schema)
    tao_automl = facts["schemas"]["train"]["top"]["automl_default_parameters"]
    assert len(tao_automl) == 10 and set(tao_automl) <= set(schema["automl_default_parameters"])
    for path in tao_automl:
        assert ours[path]["type"] == theirs[path]["type"], path
        assert ours[path]["default"] == theirs[path]["default"], path
        assert ours[path].get("automl_enabled") is True, path
        default = theirs[path]["default"]
        assert ours[path].get("minimum", default) <= default <= ours[path].get("maximum", default), path


def test_our_schemas_have_every_tao_key_with_a_compatible_type_and_taos_default(repo_root):
    """A TAO spec names no key we do not know; each key keeps TAO's type name (or is a `categorical` whose
    options are listed where TAO says `string`) and TAO's default."""
    facts = load_facts()
    for action in SCHEMA_ACTIONS:
        ours = _nodes(json.loads((repo_root / "schemas" / f"{action}.schema.json").read_text()))
        for path, node in schema_nodes(facts, action).items():
            if not isinstance(node, dict):
                continue  # TAO's stray pseudo-property
            assert path in ours, f"{action}: TAO's key {path} is missing from our schema"
            mine = ours[path]
            if node.get("type") == "collection":
                assert mine.get("type") == "collection", (action, path)
                continue
            same_type = mine.get("type") == node.get("type")
            enumerated = node.get("type") == "string" and mine.get("type") == "categorical" and node.get("default") in mine["enum"]
            assert same_type or enumerated, (action, path, mine.get("type"), node.get("type"))
            if "default" in node:
                assert mine.get("default") == node["default"], (action, path, mine.get("default"), node["default"])


def test_every_math_cond_form_of_taos_is_understood():
    """TAO writes conditions as `>0`, `> 0.0`, `/ 8`, `> 0.0 < 1.0`...: every form it uses parses with our grammar."""
    from skillkit.spec.math_cond_check import parse_math_cond

    facts = load_facts()
    forms = {node["math_cond"] for action in SCHEMA_ACTIONS for node in schema_nodes(facts, action).values()
             if isinstance(node, dict) and node.get("math_cond")}
    assert {"> 0.0", "/ 8"} <= forms
    for form in forms:
        parse_math_cond(form)


def test_taos_type_names_are_the_ones_our_validator_extends():
    from skillkit.spec.validate import schema_problems

    facts = load_facts()
    names = {node.get("type") for node in schema_nodes(facts, "train").values() if isinstance(node, dict)}
    assert names <= {"int", "integer", "float", "bool", "string", "categorical", "ordered", "ordered_int", "list",
                     "collection", "dict"}, names
    # TAO's own train template validates against TAO's own schema with our validator.
    assert schema_problems(rebuild_template(facts, "spec_template_train.yaml"), rebuild_schema(facts, "train")) == []


ACTION_SECTIONS = ("train", "evaluate", "inference", "export", "gen_trt_engine", "quantize")


def test_our_templates_have_every_key_of_taos(repo_root):
    """Each of our templates has TAO's keys for its own action and the shared sections (dataset, model, ...);
    like TAO's deploy templates, ours leave out the sections of other actions."""
    facts = load_facts()
    for name in facts["templates"]:
        ours_path = repo_root / "references" / name
        assert ours_path.is_file(), f"we ship no references/{name}"
        action = name.removeprefix("spec_template_").removeprefix("deploy_").removesuffix(".yaml")
        ours = set(_flat(yaml.safe_load(ours_path.read_text())))
        theirs = {key for key in _flat(rebuild_template(facts, name))
                  if key.split(".")[0] not in ACTION_SECTIONS or key.split(".")[0] == action}
        assert theirs - ours == set(), f"references/{name} lacks TAO's keys {sorted(theirs - ours)}"


def test_our_skill_card_offers_taos_actions_with_taos_commands(repo_root):
    facts = load_facts()["skill_info"]
    ours = yaml.safe_load((repo_root / "references" / "skill_info.yaml").read_text())
    assert ours["automl_enabled"] is True and facts["automl_enabled"] is True
    for action, entry in facts["actions"].items():
        assert action in ours["actions"], action
        assert ours["actions"][action]["command"] == entry["command"], action
        assert set(entry.get("inputs") or {}) <= set(ours["actions"][action].get("inputs") or {}), action


def _nodes(schema, prefix=""):
    result = {}
    for name, child in (schema.get("properties") or {}).items():
        if isinstance(child, dict):
            result[prefix + name] = child
            result.update(_nodes(child, f"{prefix}{name}."))
    return result


def _flat(tree, prefix=""):
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from _flat(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1]
