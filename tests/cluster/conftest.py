"""Fixtures for the scale-out tests: multi-process trials, many workers on one study, bounded disk.

The engine fixtures (fixture skill and trainer, `base_sweep`) come from tests/engine; the helpers for a
real PostgreSQL database from `postgres_db.py` here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "engine"))

from fixture_skill import make_fixture_skill  # noqa: E402


@pytest.fixture(scope="session")
def fixture_skill(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fixture_skill(tmp_path_factory.mktemp("fixture_skill"))
