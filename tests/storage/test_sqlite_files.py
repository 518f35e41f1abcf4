"""SQLite files are created whole or not at all (hpo.storage.sqlite_files), for Optuna's study file and MLflow's
store: a process killed while creating one leaves nothing a later run trips over.

Each kill test first shows the fault on the library's own creation path (the same kill point leaves a file
that breaks the next run), so the kill point provably falls inside the dangerous window."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest

from hpo.backends.optuna_factory import make_storage
from hpo.storage.sqlite_files import create_complete, sqlite_file
from hpo.tracking.sqlite_store import ensure_complete_store
from skillkit.errors import SweepConfigError

REPO = Path(__file__).resolve().parents[2]
KILLER = Path(__file__).with_name("kill_during_sql.py")
UNIQUE_STUDY_NAME_INDEX = "CREATE UNIQUE INDEX ix_studies_study_name"


def run_killed_at(prefix: str, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, str(KILLER), prefix, "--code", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {name for (name,) in connection.execute("select name from sqlite_master where type='index'")}


# -- the helper itself -------------------------------------------------------------------------------------
def test_sqlite_file_reads_sqlalchemy_urls() -> None:
    assert sqlite_file("sqlite:////abs/optuna.db") == Path("/abs/optuna.db")
    assert sqlite_file("sqlite:///rel/optuna.db?timeout=5") == Path("rel/optuna.db")
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("postgresql://127.0.0.1/db") is None


def test_builds_once_and_leaves_an_existing_file_alone(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "db.sqlite"
    calls: list[str] = []

    def build(url: str) -> None:
        calls.append(url)
        with sqlite3.connect(url[len("sqlite:///"):]) as connection:
            connection.execute("create table t (x)")

    assert create_complete(target, build) is True
    assert create_complete(target, build) is False
    assert len(calls) == 1 and calls[0] != f"sqlite:///{target}"  # built elsewhere, then moved into place
    assert sorted(p.name for p in target.parent.iterdir()) == ["db.sqlite"]  # no private file left


def test_a_file_created_meanwhile_by_another_process_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "db.sqlite"

    def build_while_another_creates_it(url: str) -> None:
        with sqlite3.connect(url[len("sqlite:///"):]) as connection:
            connection.execute("create table mine (x)")
        with sqlite3.connect(target) as connection:
            connection.execute("create table theirs (x)")

    assert create_complete(target, build_while_another_creates_it) is False
    with sqlite3.connect(target) as connection:
        assert [name for (name,) in connection.execute("select name from sqlite_master")] == ["theirs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite"]


def test_a_builder_killed_midway_leaves_no_file_and_the_next_one_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "db.sqlite"
    killed = run_killed_at("CREATE TABLE second", f"""
        import sqlite3
        from pathlib import Path
        from hpo.storage.sqlite_files import create_complete
        import sqlalchemy

        def build(url):
            engine = sqlalchemy.create_engine(url)
            with engine.connect() as connection:
                connection.exec_driver_sql("CREATE TABLE first (x)")
                connection.exec_driver_sql("CREATE TABLE second (x)")
        create_complete(Path({str(target)!r}), build)
    """)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not target.exists()
    abandoned = [p.name for p in tmp_path.iterdir()]
    assert len(abandoned) == 1 and abandoned[0].endswith(".creating"), abandoned

    assert create_complete(target, lambda url: sqlite3.connect(url[len("sqlite:///"):]).close()) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite"]


# -- Optuna's study file -----------------------------------------------------------------------------------
OPEN_TWICE = """
    import optuna
    storage = {open}
    for _ in range(2):  # a run, then a resume
        optuna.create_study(study_name="s", storage=storage, direction="maximize", load_if_exists=True)
"""


def test_optuna_alone_killed_while_creating_its_schema_breaks_every_later_resume(tmp_path: Path) -> None:
    """The fault, on Optuna's own path: killed between creating `studies` and its unique index."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    killed = run_killed_at(UNIQUE_STUDY_NAME_INDEX, OPEN_TWICE.format(open=f"optuna.storages.RDBStorage({url!r})"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "ix_studies_study_name" not in indexes(tmp_path / "optuna.db")
    storage = optuna.storages.RDBStorage(url)
    optuna.create_study(study_name="s", storage=storage, load_if_exists=True)
    with pytest.raises(optuna.exceptions.StorageInternalError):
        optuna.create_study(study_name="s", storage=storage, load_if_exists=True)  # a second study "s"


def test_make_storage_killed_while_creating_the_schema_leaves_a_resumable_workspace(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    code = "from hpo.backends.optuna_factory import make_storage\n" + textwrap.dedent(OPEN_TWICE).format(
        open=f"make_storage({url!r})")
    killed = run_killed_at(UNIQUE_STUDY_NAME_INDEX, code)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "optuna.db").exists()

    storage = make_storage(url)
    first = optuna.create_study(study_name="s", storage=storage, load_if_exists=True)
    again = optuna.create_study(study_name="s", storage=make_storage(url), load_if_exists=True)
    assert first._study_id == again._study_id
    assert {"ix_studies_study_name", "ix_trials_study_id"} <= indexes(tmp_path / "optuna.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optuna.db"]


def _broken_study_file(path: Path, *, duplicate: bool) -> None:
    """A study file as an earlier build left it when killed mid-creation: no unique index on the name."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    optuna.create_study(study_name="s", storage=storage)
    storage.engine.dispose()
    with sqlite3.connect(path) as connection:
        connection.execute("drop index ix_studies_study_name")
        if duplicate:
            connection.execute("insert into studies (study_name) values ('s')")


def test_a_study_file_missing_its_unique_index_is_repaired_on_open(tmp_path: Path) -> None:
    path = tmp_path / "optuna.db"
    _broken_study_file(path, duplicate=False)
    storage = make_storage(f"sqlite:///{path}")
    assert "ix_studies_study_name" in indexes(path)
    for _ in range(2):
        optuna.create_study(study_name="s", storage=storage, load_if_exists=True)
    assert len(optuna.get_all_study_names(storage)) == 1


def test_a_study_file_with_two_studies_of_one_name_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "optuna.db"
    _broken_study_file(path, duplicate=True)
    with pytest.raises(SweepConfigError, match=r"optuna\.db lacks its index 'ix_studies_study_name'.*two studies"):
        make_storage(f"sqlite:///{path}")


# -- MLflow's store ----------------------------------------------------------------------------------------
OPEN_STORE = """
    from mlflow import MlflowClient
    {prepare}
    MlflowClient(tracking_uri={url!r}).search_experiments()
"""
# Inside MLflow's migration chain: one column of a two-column step added, the step not yet recorded.
MIGRATION_STEP = "ALTER TABLE experiments ADD COLUMN last_update_time"


def _reopen(url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = f"from mlflow import MlflowClient; print([e.name for e in MlflowClient(tracking_uri={url!r}).search_experiments()])"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_mlflow_alone_killed_during_its_migrations_leaves_a_store_that_never_opens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    killed = run_killed_at(MIGRATION_STEP, OPEN_STORE.format(prepare="", url=url))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    reopened = _reopen(url, tmp_path)
    assert reopened.returncode != 0 and "OperationalError" in reopened.stderr


def test_tracking_store_killed_during_creation_leaves_nothing_and_opens_next_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepare = f"from hpo.tracking.sqlite_store import ensure_complete_store; ensure_complete_store({url!r})"
    killed = run_killed_at(MIGRATION_STEP, OPEN_STORE.format(prepare=prepare, url=url))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "mlflow.db").exists()

    ensure_complete_store(url)
    reopened = _reopen(url, tmp_path)
    assert reopened.returncode == 0, reopened.stderr
    assert "Default" in reopened.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]
