"""Ray backend pieces that need no cluster: PBT's packed configs, explore within bounds, the plan's stream."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hpo.space import compile_space
from skillkit.skill_dir import SkillDir
from tests.engine.fixture_skill import make_fixture_skill

pytest.importorskip("ray")

from hpo.backends.ray_backend import PbtExplorer, SpaceSampler  # noqa: E402
from hpo.backends.ray_trainable import PBT_PARAMS_KEY, pack_params, params_of  # noqa: E402


@pytest.fixture
def space(tmp_path: Path):  # noqa: ANN201
    return compile_space(SkillDir(make_fixture_skill(tmp_path / "skill")).schema("train"))


def test_sampler_continues_after_the_planned_batch(space) -> None:  # noqa: ANN001
    rng = np.random.default_rng(3)
    planned = [space.sample(rng, epoch_budget=4) for _ in range(2)]
    after = space.sample(rng, epoch_budget=4)
    sampler = SpaceSampler(space, 3, 4, skip=len(planned))
    assert params_of({PBT_PARAMS_KEY: sampler(None)}) == pytest.approx(after)


def test_explore_perturbs_inside_the_space(space) -> None:  # noqa: ANN001
    explorer = PbtExplorer(space, seed=0, factor=1.2, resample_probability=0.0)
    start = {"model.activation": "gelu", "model.width": 64, "train.optim.lr": 0.1, "train.optim.weight_decay": 0.25}
    config = {PBT_PARAMS_KEY: pack_params(start), "other": 1}
    for _ in range(20):
        config = explorer(config)
        values = params_of(config)
        assert 8 <= values["model.width"] <= 64 and 1e-5 <= values["train.optim.lr"] <= 0.1
        assert values["model.activation"] in ("relu", "gelu", "silu") and config["other"] == 1
    assert params_of(config) != start
    assert json.loads(config[PBT_PARAMS_KEY]) == params_of(config)


def test_params_of_flat_configs_are_plain(space) -> None:  # noqa: ANN001
    values = params_of({"train.optim.lr": np.float64(0.01), "model.activation": np.str_("relu")})
    assert type(values["train.optim.lr"]) is float and type(values["model.activation"]) is str
