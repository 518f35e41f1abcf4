"""The search-efficiency benchmark (benchmarks/search_efficiency): its protocol numbers, its table format, the
simulator's determinism, the `--quick` run end to end, and the simulator-vs-real cross-check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def bench_env() -> None:
    """The benchmark-only packages (TAO AutoML, mf-prior-bench, dehb) in .venv-bench; installed if missing."""
    done = subprocess.run(["bash", str(ROOT / "benchmarks/search_efficiency/setup_env.sh")], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"setup_env.sh failed: {done.stderr[-2000:]}"


def test_tao_hyperband_iteration_is_234_epochs_at_r27_eta3() -> None:
    from benchmarks.search_efficiency.metrics import protocol_budget, tao_hyperband_budget

    assert tao_hyperband_budget(27, 3) == 234  # 81 + 63 + 90: brackets s=3,2,1, promoted runs resume
    assert protocol_budget(27) == 2340


def test_speedup_censors_failures_at_the_budget() -> None:
    from benchmarks.search_efficiency.metrics import summarise
    from benchmarks.search_efficiency.simulator import Trace

    def trace(epochs: list[int], regret: list[float]) -> Trace:
        return Trace(algorithm="a", suite="s", seed=0, budget_epochs=100, epochs=epochs, regret=regret)

    runs = [trace([10], [0.1]), trace([20], [0.1]), trace([30], [0.5]), trace([40], [0.1])]
    summary = summarise(runs, q=0.2, budget=100, cap=1.0)
    assert summary.median_epochs_to_target == 30.0  # 10, 20, 100 (censored), 40
    assert summary.speedup == pytest.approx(100 / 30)
    assert summary.success_rate == 0.75
    assert summary.ci_low <= summary.speedup <= summary.ci_high


def test_table_round_trip_and_clear_errors(tmp_path: Path) -> None:
    from benchmarks.search_efficiency.table import CurveTable, TableError, TableParameter, load_table

    table = CurveTable(name="t", description="", metric="acc", direction="maximize", max_epochs=3,
                       parameters=(TableParameter("lr", "float", 1e-3, 1.0, "log"),),
                       configs=({"lr": 0.01}, {"lr": 0.1}), curves=np.array([[[0.1, 0.2, 0.3]], [[0.2, float("nan"), 0.5]]]))
    loaded = load_table(table.save(tmp_path / "t.json.gz"))
    assert loaded.curves.shape == (2, 1, 3) and loaded.curves[1, 0, 1] == 0.1  # NaN -> worst finite value
    bad = table.to_dict() | {"max_epochs": 4}
    with pytest.raises(TableError, match=r"'curves' must have shape"):
        from benchmarks.search_efficiency.table import table_from_dict
        table_from_dict(bad)


def test_geometric_mean_over_suites_has_a_bootstrap_ci() -> None:
    from benchmarks.search_efficiency.metrics import Summary, geometric_mean_ci

    def suite(epochs: list[float], budget: int = 2340) -> Summary:
        median = float(np.median(epochs))
        return Summary(len(epochs), median, budget / median, 0, 0, 1.0, 0.1, tuple(epochs), budget)

    steady = [suite([780.0] * 10), suite([390.0] * 10)]  # speed-ups 3 and 6: geo-mean sqrt(18), no spread
    point, low, high = geometric_mean_ci(steady)
    assert point == pytest.approx(18 ** 0.5) and low == pytest.approx(point) and high == pytest.approx(point)
    noisy = [suite([300.0, 500.0, 900.0, 2340.0, 700.0, 400.0]), suite([390.0] * 6)]
    point, low, high = geometric_mean_ci(noisy)
    assert low < point < high and high / low > 1.2


def test_simulator_is_deterministic_and_uses_the_engine_pruner() -> None:
    from benchmarks.search_efficiency import get_suite, run_algorithm

    suite = get_suite("mfh3_good")
    first = run_algorithm("ours:asha", suite, seed=3, budget_epochs=300)
    second = run_algorithm("ours:asha", suite, seed=3, budget_epochs=300)
    assert first.to_dict() == second.to_dict()
    assert first.trials > 300 // 27  # the successive-halving pruner stopped trials early
    assert first.epochs and all(r >= 0 for r in first.regret)


def test_cache_resumes_a_run_without_rerunning_its_sweeps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.search_efficiency import __main__ as cli
    from benchmarks.search_efficiency import algorithms

    job = ("ours:asha", "mfh3_good", 1, 120, 4, str(tmp_path / "cache"))
    first = cli._run_one(job)

    def not_again(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("a cached sweep ran again")

    monkeypatch.setattr(algorithms, "run_algorithm", not_again)
    assert cli._run_one(job).to_dict() == first.to_dict()
    with pytest.raises(AssertionError, match="ran again"):
        cli._run_one(("ours:asha", "mfh3_good", 2, 120, 4, str(tmp_path / "cache")))  # another seed is not cached


def test_quick_run_writes_the_results_schema(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.search_efficiency", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "search_efficiency_quick.json").read_text())
    assert set(results) >= {"command", "default_algorithm", "suites"}
    suite = results["suites"]["mfh3_good"]
    assert suite["budget_epochs"] == 234 and suite["target"] >= 0
    assert {"tao_hyperband", "tao_bayesian"} <= set(suite["algorithms"])
    for row in suite["algorithms"].values():
        assert set(row) == {"seeds", "median_epochs_to_target", "speedup", "ci_low", "ci_high", "success_rate", "auc"}
        assert row["ci_low"] <= row["speedup"] <= row["ci_high"]
    assert (tmp_path / "mfh3_good_quick.png").stat().st_size > 1000
    assert "| tao_hyperband |" in (tmp_path / "search_efficiency_quick.md").read_text()


def test_unknown_algorithm_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.search_efficiency", "--quick", "--algorithms", "tao_hyperbnd",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    assert done.returncode == 2 and "unknown algorithm 'tao_hyperbnd'" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_simulator_makes_the_same_decisions_as_the_real_subprocess_path(tmp_path: Path) -> None:
    from benchmarks.search_efficiency.crosscheck import crosscheck

    result = crosscheck(algorithm={"name": "bohb"}, suite_name="mfh3_good@9", trials=6, seed=0, workdir=tmp_path)
    assert result["identical"], result["problems"]
    assert {d["completed"] for d in result["decisions"]} == {True, False}  # some pruned, some completed
