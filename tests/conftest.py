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


@pytest.fixture(scope="session", autouse=True)
def no_stray_tracking_store_in_the_checkout():
    """MLflow's default store is ./mlflow.db: a test that forgets its own tracking URI would write there."""
    stray = [REPO_ROOT / "mlflow.db", REPO_ROOT / "mlruns"]
    existed = {path for path in stray if path.exists()}
    yield
    created = [str(path) for path in stray if path.exists() and path not in existed]
    assert not created, f"a test wrote MLflow data into the checkout: {created}"
