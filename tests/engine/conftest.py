"""Fixtures for the engine tests: the fixture skill dir and sweep configs that drive `fixture_trainer.py`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engine.fixture_skill import make_fixture_skill


@pytest.fixture(scope="session")
def fixture_skill(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fixture_skill(tmp_path_factory.mktemp("fixture_skill"))


def base_sweep(skill: Path, default_workspace: Path, **changes: Any) -> dict[str, Any]:
    """A small, fast sweep over the fixture trainer; `changes` replace top-level keys (dicts are merged)."""
    sweep: dict[str, Any] = {
        "name": "fx",
        "skill_dir": str(skill),
        "workspace": str(default_workspace),
        "backend": "optuna",
        "algorithm": {"name": "random", "max_trials": 4, "max_epochs": 3},
        "resources": {"cpus_per_trial": 1, "max_concurrent": 2},
        "spec_overrides": {"fixture.sleep_s": 0.02},
        "trial": {"stop_grace_s": 5},
        "tracking": {"enabled": False},
        "promotion": {"enabled": False},
        "seed": 7,
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(sweep.get(key), dict):
            sweep[key] = {**sweep[key], **value}
        else:
            sweep[key] = value
    return sweep


@pytest.fixture
def write_sweep(tmp_path: Path, fixture_skill: Path) -> Callable[..., Path]:
    """write_sweep(**changes) -> path of a sweep YAML in tmp_path (workspace tmp_path/ws)."""

    def write(**changes: Any) -> Path:
        data = base_sweep(fixture_skill, tmp_path / "ws", **changes)
        path = tmp_path / f"{data['name']}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write
