"""TAO's packaged Mask2Former train schema and our generated one compile into sensible spaces."""

from __future__ import annotations

import json

import numpy as np

from hpo.space import SearchSpace, compile_space, load_schema_file
from skillkit.spec import load_spec
from skillkit.spec.validate import schema_problems
from tests.space.space_schemas import spec_from


def _check_mask2former_space(space: SearchSpace) -> None:
    lr = space["train.optim.lr"]
    assert lr.kind == "float" and lr.scale == "log" and lr.low > 0
    hidden = space["model.mask_former.hidden_dim"]
    assert hidden.kind == "int" and hidden.step == 8
    rng = np.random.default_rng(0)
    values = [space.sample(rng) for _ in range(2000)]
    assert all(v["model.mask_former.hidden_dim"] % 8 == 0 for v in values)
    assert all(space.violations(v) == [] for v in values)
    lrs = np.log10([v["train.optim.lr"] for v in values])
    # log-uniform: the lower and upper halves of the log range are equally likely
    middle = (np.log10(lr.low) + np.log10(lr.high)) / 2
    assert abs(np.mean(lrs < middle) - 0.5) < 0.05


def test_tao_reference_train_schema(tao_reference):
    schema = load_schema_file(tao_reference / "schemas" / "train.schema.json")
    space = compile_space(schema)
    assert set(space.names) == set(schema["automl_default_parameters"])
    _check_mask2former_space(space)
    # Infinity maxima get a practical bound above the default (TAO collapsed them onto it).
    queries = space["model.mask_former.num_object_queries"]
    assert queries.high == 400 and "4x default 100" in queries.why
    # Samples validate as specs against TAO's own schema.
    rng = np.random.default_rng(1)
    for _ in range(50):
        assert schema_problems(spec_from(schema, space.sample(rng)), schema) == []


def test_tao_reference_schema_with_disabled_override(tao_reference):
    schema = load_schema_file(tao_reference / "schemas" / "train.schema.json")
    space = compile_space(schema, selection=["train.optim.milestones", "train.num_epochs"], override_automl_disabled_params=True)
    rng = np.random.default_rng(0)
    for budget in (3, 6, 27):
        for _ in range(100):
            values = space.sample(rng, epoch_budget=budget)
            assert all(1 <= m < budget for m in values["train.optim.milestones"]) and values["train.optim.milestones"]


def test_our_train_schema(repo_root):
    path = repo_root / "schemas" / "train.schema.json"
    assert path.is_file(), "run 'hpo schemas generate' and commit schemas/"
    schema = load_schema_file(path)
    space = compile_space(schema)
    _check_mask2former_space(space)
    rng = np.random.default_rng(2)
    for _ in range(20):
        overrides = space.to_overrides(space.sample(rng))
        load_spec(None, "train", overrides, repo_root, check_mandatory=False, check_classes=False)


def test_committed_search_space_is_current(repo_root):
    schema_path = repo_root / "schemas" / "train.schema.json"
    committed = repo_root / "search_spaces" / "mask2former_train.yaml"
    assert schema_path.is_file(), "run 'hpo schemas generate' and commit schemas/"
    assert committed.is_file(), "run 'hpo space compile' and commit search_spaces/mask2former_train.yaml"
    fresh = compile_space(load_schema_file(schema_path)).to_yaml()
    assert committed.read_text() == fresh, "search_spaces/mask2former_train.yaml is stale: run 'hpo space compile'"
    assert SearchSpace.from_yaml(committed.read_text()) == compile_space(json.loads(schema_path.read_text()))
