"""Fixtures shared by the tracking and promotion tests: stores to log into (a SQLite file and a real
`mlflow server` on PostgreSQL). Each test folder's conftest imports them."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tracking.mlflow_server import MlflowServer, start_server


@pytest.fixture(scope="session")
def migrated_sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database with every migration applied, copied into each sweep that needs one
    (migrating a fresh file costs seconds per test)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = start_server(tmp_path_factory)
    yield server
    server.close()


class Store:
    """Where a test sweep logs: `tracking(sweep_dir)` returns the sweep config's `tracking` section."""

    def __init__(self, kind: str, template: Path, server: MlflowServer | None) -> None:
        self.kind = kind
        self.template = template
        self.server = server
        self.model_name = "mask2former" if kind == "sqlite" else f"mask2former_{uuid.uuid4().hex[:8]}"

    def tracking(self, **extra: Any) -> dict[str, Any]:
        section: dict[str, Any] = {"registered_model_name": self.model_name, "retry_interval_s": 0, **extra}
        if self.server is not None:
            section["tracking_uri"] = self.server.uri
            section["http_timeout_s"] = 3
        return section

    def prepare(self, sweep_dir: Path) -> None:
        if self.kind == "sqlite":
            sweep_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.template, sweep_dir / "mlflow.db")

    def uri_for(self, sweep_dir: Path) -> str:
        return self.server.uri if self.server is not None else f"sqlite:///{sweep_dir / 'mlflow.db'}"

    def client(self, sweep_dir: Path) -> Any:
        from mlflow import MlflowClient

        uri = self.uri_for(sweep_dir)
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture(params=["sqlite", "server"])
def store(request: pytest.FixtureRequest, migrated_sqlite_db: Path) -> Store:
    server = request.getfixturevalue("mlflow_server") if request.param == "server" else None
    return Store(request.param, migrated_sqlite_db, server)


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    return lambda prefix: f"{prefix}_{uuid.uuid4().hex[:8]}"
