"""Search-efficiency benchmark: our engine's algorithms against TAO AutoML's and the peers', on simulated
sweeps that replay learning curves (see README.md in this folder).

    python -m benchmarks.search_efficiency --quick          # CI form: one suite, few seeds
    python -m benchmarks.search_efficiency                  # the full protocol

Python API (stable; the algorithms branch chooses the default algorithm with it):

    from benchmarks.search_efficiency import get_suite, run_algorithm
    trace = run_algorithm("ours:tpe", get_suite("mfh3_good"), seed=0, budget_epochs=2340)
"""

from benchmarks.search_efficiency.env import use_benchmark_env

use_benchmark_env()

from benchmarks.search_efficiency.algorithms import registry, run_algorithm  # noqa: E402
from benchmarks.search_efficiency.simulator import Trace, simulate  # noqa: E402
from benchmarks.search_efficiency.suites import get_suite, suite_names  # noqa: E402

__all__ = ["Trace", "get_suite", "registry", "run_algorithm", "simulate", "suite_names", "use_benchmark_env"]
