"""Fixtures for the scale-out tests: multi-process trials, many workers on one study, bounded disk.

The engine fixtures (fixture skill and trainer, `base_sweep`) come from tests/engine; the helpers for a
real PostgreSQL database from `cluster_support.py` here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.fixture_skill import make_fixture_skill


@pytest.fixture(scope="session")
def fixture_skill(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fixture_skill(tmp_path_factory.mktemp("fixture_skill"))
