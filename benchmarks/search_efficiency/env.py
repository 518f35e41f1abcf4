"""The benchmark's separate environment: `.venv-bench/` (benchmark-only packages installed --no-deps by
`setup_env.sh`) goes on sys.path of the benchmark process only — never the engine's runtime."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_SITE = ROOT / ".venv-bench"
HASH_SEED = "0"


class BenchmarkEnvError(RuntimeError):
    pass


def use_benchmark_env() -> Path:
    if str(BENCH_SITE) not in sys.path:
        sys.path.append(str(BENCH_SITE))
    return BENCH_SITE


def require_benchmark_env() -> None:
    """Fail loudly (one paragraph) when the benchmark-only packages are missing."""
    missing = [name for name in ("tao_automl", "mfpbench", "syne_tune") if not (BENCH_SITE / name).is_dir()]
    if missing:
        raise BenchmarkEnvError(
            f"the benchmark environment lacks {', '.join(missing)} (expected in {BENCH_SITE}); run "
            "`bash benchmarks/search_efficiency/setup_env.sh` (after scripts/setup.sh) to install the benchmark-only "
            "packages listed in benchmarks/search_efficiency/requirements-bench.txt."
        )


def ensure_hash_seed(argv: list[str]) -> None:
    """TAO's brains seed themselves with hash(session id): re-execute with a fixed PYTHONHASHSEED."""
    if os.environ.get("PYTHONHASHSEED") != HASH_SEED:
        env = {**os.environ, "PYTHONHASHSEED": HASH_SEED}
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.search_efficiency", *argv], env)
