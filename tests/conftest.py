"""Shared test fixtures: the repository's own skill dir and TAO's reference files.

`tao_reference` is a folder laid out like TAO's packaged Mask2Former skill files (schemas/, references/).
Every test using it runs twice: on the files rebuilt from the committed facts (`tao_compat/facts.json`,
always), and on TAO's full original files when the environment variable `HPO_TAO_REFERENCE` names their
folder (`.ci/run` sets it to the copy beside the repository); without it those runs skip, naming it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tao_compat.facts import full_reference, load_facts, materialize

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session", params=["facts", "full"])
def tao_reference(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if request.param == "full":
        return full_reference()
    return materialize(load_facts(), tmp_path_factory.mktemp("tao-facts"))


@pytest.fixture(scope="session", autouse=True)
def no_stray_tracking_store_in_the_checkout():
    """MLflow's default store is ./mlflow.db: a test that forgets its own tracking URI would write there."""
    stray = [REPO_ROOT / "mlflow.db", REPO_ROOT / "mlruns"]
    existed = {path for path in stray if path.exists()}
    yield
    created = [str(path) for path in stray if path.exists() and path not in existed]
    assert not created, f"a test wrote MLflow data into the checkout: {created}"
