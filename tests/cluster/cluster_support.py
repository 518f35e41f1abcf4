"""Helpers shared by the scale-out tests: the engine tests' fixture sweep config, and a real PostgreSQL
database of our own on the server at 127.0.0.1:5432 (created per test, dropped afterwards)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import base_sweep as engine_base_sweep

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


def base_sweep(skill: Path, workspace: Path, **changes: Any) -> dict[str, Any]:
    """The engine tests' small, fast fixture sweep (tests/engine/conftest.py), with `changes` applied."""
    return engine_base_sweep(skill, workspace, **changes)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the PostgreSQL server at 127.0.0.1:5432 (trust auth, user postgres), made with
    `createdb` as docs/cluster-optuna-workers.md says; yields its URL and drops it (and every connection to
    it) afterwards. No server is a test FAILURE, never a skip: these tests exist to run against the real thing."""
    name = f"hpo_cluster_{uuid.uuid4().hex[:10]}"
    where = ["-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER]
    if shutil.which("createdb") is None:
        pytest.fail("the PostgreSQL client programs (createdb, dropdb) are needed on PATH")
    made = subprocess.run(["createdb", *where, name], capture_output=True, text=True, timeout=60)
    if made.returncode != 0:
        pytest.fail(f"PostgreSQL is needed at {PG_HOST}:{PG_PORT} (user {PG_USER}, trust auth): createdb said "
                    f"{made.stderr.strip()}")
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        subprocess.run(["dropdb", *where, "--if-exists", "--force", name], capture_output=True, timeout=60)
