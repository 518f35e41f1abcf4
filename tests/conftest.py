"""Shared test fixtures: the repository's own skill dir and TAO's reference files."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TAO_REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "tao-mask2former"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tao_reference() -> Path:
    if not TAO_REFERENCE.is_dir():
        pytest.skip("TAO reference files (../shared/reference/tao-mask2former) are not present")
    return TAO_REFERENCE
