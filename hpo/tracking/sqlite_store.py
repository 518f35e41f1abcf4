"""An MLflow SQLite store that exists complete or not at all.

MLflow creates a new SQLite store by running its whole migration chain, step by step and not in one
transaction (about a second). A driver killed in that second leaves a store that never opens again
("duplicate column name", "table ... already exists"), and every tracking operation of the sweep would stay
pending for good. So a store that does not exist yet is built in a private file and linked into place
(`hpo.storage.sqlite_files.create_complete`).
"""

from __future__ import annotations

from hpo.storage.sqlite_files import create_complete, sqlite_file


def ensure_complete_store(uri: str) -> None:
    """Create the SQLite store `uri` names, whole, if it does not exist; other URIs are left alone."""
    path = sqlite_file(uri)
    if path is not None:
        create_complete(path, _build_store)


def _build_store(url: str) -> None:
    """MLflow's own initialisation (tables, migrations, the default experiment) through the same client call
    a sweep makes first, then the engine MLflow cached for this private file is closed."""
    from mlflow import MlflowClient
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    MlflowClient(tracking_uri=url).search_experiments(max_results=1)
    engine = SqlAlchemyStore._engine_map.pop(url, None)  # MLflow keeps one engine per URI for the process
    if engine is not None:
        engine.dispose()
