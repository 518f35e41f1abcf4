"""The benchmark tests' one fixture: the benchmark-only packages (TAO AutoML, mf-prior-bench, dehb, Syne Tune)
in .venv-bench, installed if missing, and importable."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # benchmarks/ is importable through pytest's pythonpath (pyproject)


@pytest.fixture(scope="session")
def bench_env() -> None:
    done = subprocess.run(["bash", str(ROOT / "benchmarks/search_efficiency/setup_env.sh")], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"setup_env.sh failed: {done.stderr[-2000:]}"
    from benchmarks.search_efficiency.env import use_benchmark_env

    use_benchmark_env()
