"""`model.backbone.type` (and the EfficientViT size) added to a sweep: categoricals over the built backbones,
cold for PBT (a different backbone is a different checkpoint), every draw a loadable spec."""

from __future__ import annotations

import numpy as np
import pytest

from hpo.driver.compatibility import COLD_REASON, unsearchable
from hpo.space import compile_space, load_schema_file
from hpo.sweep.config import sweep_config_from_dict
from skillkit.errors import SearchSpaceError
from skillkit.spec import load_spec

NAMES = ["model.backbone.type", "model.backbone.efficientvit.name"]


@pytest.fixture(scope="module")
def space(repo_root):
    schema = load_schema_file(repo_root / "schemas" / "train.schema.json")
    with pytest.raises(SearchSpaceError, match="override_automl_disabled_params"):
        compile_space(schema, selection=NAMES)  # like every field outside the default sweep
    return compile_space(schema, selection=NAMES, override_automl_disabled_params=True)


def test_backbone_type_is_a_cold_categorical(space) -> None:
    backbone, size = space["model.backbone.type"], space["model.backbone.efficientvit.name"]
    assert backbone.kind == "categorical" and set(backbone.choices) == {"swin", "efficientvit"}
    assert size.kind == "categorical" and set(size.choices) == {"b0", "b1", "b2", "b3", "l0", "l1", "l2", "l3"}
    assert not backbone.hot and not size.hot


def test_pbt_refuses_it_and_tpe_searches_it(space, tmp_path) -> None:
    def config(algorithm: dict, backend: str):
        return sweep_config_from_dict(
            {"name": "s", "algorithm": algorithm, "backend": backend, "workspace": str(tmp_path),
             "search_space": {"parameters": NAMES, "override_automl_disabled_params": True}},
            base_dir=tmp_path)

    pbt = config({"name": "pbt", "max_trials": 4, "population_size": 4, "max_epochs": 4}, "ray")
    assert unsearchable(pbt, space) == {name: COLD_REASON for name in NAMES}
    assert unsearchable(config({"name": "tpe", "max_trials": 4}, "optuna"), space) == {}


def test_draws_are_loadable_specs(space, repo_root) -> None:
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(12):
        values = space.sample(rng)
        seen.add(values["model.backbone.type"])
        spec = load_spec(None, "train", space.to_overrides(values), repo_root, check_mandatory=False,
                         check_classes=False)
        assert spec["model"]["backbone"]["type"] == values["model.backbone.type"]
    assert seen == {"swin", "efficientvit"}
