"""A real `mlflow server` process on 127.0.0.1, backed by its own PostgreSQL database, for tests.

The server can be stopped and started again on the same port and database (the outage tests). Everything
it creates is removed at `close()`: the process group, the database, the artifact folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.tracking.synthetic_sweep import free_port

PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}


def postgres_available() -> bool:
    if shutil.which("psql") is None:
        return False
    result = subprocess.run(["pg_isready", "-h", PG["host"], "-p", PG["port"]], capture_output=True, check=False)
    return result.returncode == 0


def _psql(*args: str) -> None:
    subprocess.run([args[0], "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], *args[1:]], check=True,
                   capture_output=True)


class MlflowServer:
    """`mlflow server` with a PostgreSQL backend store and proxied artifacts."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.database = f"hpo_test_{uuid.uuid4().hex[:12]}"
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.artifacts = workdir / "artifacts"
        self.log = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        _psql("createdb", self.database)

    def start(self, timeout_s: float = 180.0) -> None:
        executable = Path(sys.executable).parent / "mlflow"
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(executable), "server", "--backend-store-uri",
                 f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{self.database}",
                 "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", "1"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server did not become healthy in {timeout_s} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Stop the whole process group (the CLI, uvicorn and its worker) and wait until the port is free."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # uvicorn's children may outlive the CLI for a moment
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def close(self) -> None:
        self.stop()
        try:
            _psql("dropdb", "--if-exists", "--force", self.database)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_server(tmp_path_factory: pytest.TempPathFactory) -> MlflowServer:
    if not postgres_available():
        pytest.fail("PostgreSQL is needed at 127.0.0.1:5432 (user postgres, trust auth; docs/testing.md)")
    if not (Path(sys.executable).parent / "mlflow").is_file():
        pytest.fail(f"the mlflow CLI is needed next to {sys.executable} (scripts/setup.sh installs it)")
    server = MlflowServer(tmp_path_factory.mktemp("mlflow_server"))
    try:
        server.start()
    except Exception:
        server.close()
        raise
    return server
