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


pytestmark = pytest.mark.usefixtures("bench_env")


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
    # A knobbed name that resolves to the same algorithm section reads the same sweeps back, under its own name;
    # one that resolves to another does not (the cache is keyed by what `hpo run` would build, not by the name).
    same = cli._run_one(("ours:asha[reduction_factor=3]", "mfh3_good", 1, 120, 4, str(tmp_path / "cache")))
    assert same.algorithm == "ours:asha[reduction_factor=3]" and same.regret == first.regret
    with pytest.raises(AssertionError, match="ran again"):
        cli._run_one(("ours:asha[reduction_factor=2]", "mfh3_good", 1, 120, 4, str(tmp_path / "cache")))


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


def test_engine_algorithm_knobs_are_reachable_by_name(tmp_path: Path) -> None:
    """`ours:mfbo[knob=value,...]` runs the engine's mfbo with those sweep-config knobs (the variants of the
    README's "The default algorithm"); a knob the sweep schema refuses is a clear error, not a traceback."""
    from benchmarks.search_efficiency import get_suite, run_algorithm
    from benchmarks.search_efficiency.algorithms import knobbed, split_names

    assert split_names("tao_hyperband,ours:mfbo[random_fraction=0.33,n_startup_trials=5],dehb") == [
        "tao_hyperband", "ours:mfbo[random_fraction=0.33,n_startup_trials=5]", "dehb"]
    assert knobbed("ours:mfbo[random_fraction=0.33,model_budget=rank_agreement]") == (
        "ours:mfbo", {"random_fraction": 0.33, "model_budget": "rank_agreement"})
    suite = get_suite("mfh3_good")
    plain = run_algorithm("ours:mfbo", suite, seed=1, budget_epochs=400)
    explicit = run_algorithm("ours:mfbo[random_fraction=0,model_budget=highest]", suite, seed=1, budget_epochs=400)
    random = run_algorithm("ours:mfbo[random_fraction=1]", suite, seed=1, budget_epochs=400)
    assert explicit.to_dict()["regret"] == plain.to_dict()["regret"]
    assert random.to_dict()["regret"] != plain.to_dict()["regret"]
    done = subprocess.run([sys.executable, "-m", "benchmarks.search_efficiency", "--suites", "mfh3_good", "--seeds", "1",
                           "--algorithms", "ours:mfbo[random_fraction=2]", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONHASHSEED": "0"})
    assert done.returncode == 2 and "random_fraction" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_simulator_makes_the_same_decisions_as_the_real_subprocess_path(tmp_path: Path) -> None:
    from benchmarks.search_efficiency.crosscheck import crosscheck

    result = crosscheck(algorithm={"name": "bohb"}, suite_name="mfh3_good@9", trials=6, seed=0, workdir=tmp_path)
    assert result["identical"], result["problems"]
    assert {d["completed"] for d in result["decisions"]} == {True, False}  # some pruned, some completed


# ------------------------------------------------------------------ Ray Tune's schedulers (raytune.py)


@pytest.mark.parametrize("name", ["ray:asha", "ray:hyperband", "ray:bohb", "syne:asha", "syne:bohb"])
def test_peer_policies_are_deterministic_seeded_and_start_no_ray_cluster(name: str) -> None:
    """Ray Tune's (raytune.py) and Syne Tune's (synetune.py) schedulers in the simulator: the same seed gives
    the same trace and decisions, another seed other configurations; no Ray cluster is ever started."""
    import ray

    from benchmarks.search_efficiency import get_suite, run_algorithm

    suite = get_suite("mfh3_good")
    first = run_algorithm(name, suite, seed=2, budget_epochs=300, record_decisions=True)
    second = run_algorithm(name, suite, seed=2, budget_epochs=300, record_decisions=True)
    assert first.to_dict() == second.to_dict() and first.decisions == second.decisions
    assert first.total_epochs >= 300 and first.full_budget_results >= 1
    other = run_algorithm(name, suite, seed=3, budget_epochs=300, record_decisions=True)
    assert [d.config for d in other.decisions] != [d.config for d in first.decisions]  # the seed matters
    assert not ray.is_initialized()


def _runs_by_trial(decisions: list) -> dict:
    runs: dict = {}
    for decision in decisions:
        runs.setdefault(decision.key, []).append(decision)
    return runs


def test_ray_asha_stops_trials_early_at_its_default_rungs() -> None:
    from benchmarks.search_efficiency import get_suite, run_algorithm

    trace = run_algorithm("ray:asha", get_suite("mfh3_good"), seed=0, budget_epochs=400, record_decisions=True)
    stopped = [d for d in trace.decisions if d.reason == "stopped"]
    # ASHAScheduler's defaults at max_t = 27: grace period 1, reduction factor 4 -> rungs at 1, 4 and 16 epochs.
    assert len(stopped) > 0.6 * len(trace.decisions)
    assert {d.end_epoch for d in stopped} <= {1, 4, 16} and {1, 4} <= {d.end_epoch for d in stopped}
    assert all(d.start_epoch == 0 for d in trace.decisions)  # asynchronous: nothing is paused
    assert trace.trials > 400 // 27 * 5


def test_ray_hyperband_pauses_and_resumes_trials_without_retraining_an_epoch() -> None:
    from benchmarks.search_efficiency import get_suite, run_algorithm

    trace = run_algorithm("ray:hyperband", get_suite("mfh3_good"), seed=0, budget_epochs=400, record_decisions=True)
    runs = _runs_by_trial(trace.decisions)
    resumed = [r for r in runs.values() if len(r) > 1]
    assert resumed, "no paused trial was resumed"
    for trial_runs in runs.values():
        assert trial_runs[0].start_epoch == 0
        for before, after in zip(trial_runs, trial_runs[1:]):
            assert before.reason == "paused" and after.start_epoch == before.end_epoch  # from its checkpoint
    # HyperBandScheduler's rungs at max_t = 27, eta = 3: a trial pauses only at 1, 3 or 9 epochs (or when the
    # budget ends the sweep), and a promoted trial reaches the full 27 epochs across several runs.
    paused_at = {d.end_epoch for d in trace.decisions if d.reason == "paused"}
    assert {1, 3, 9} & paused_at and len(paused_at - {1, 3, 9}) <= 4
    assert any(r[-1].end_epoch == 27 and len(r) > 1 for r in runs.values())
    assert sum(d.end_epoch - d.start_epoch for d in trace.decisions) == trace.total_epochs


def test_ray_bohb_proposes_from_its_model_after_its_random_start() -> None:
    from benchmarks.search_efficiency import get_suite
    from benchmarks.search_efficiency.algorithms import registry
    from benchmarks.search_efficiency.simulator import simulate

    suite = get_suite("mfh3_good")
    policy = registry()["ray:bohb"](suite, 0)
    bohb = policy.searcher.bohber  # hpbandster's BOHB config generator inside Ray's TuneBOHB
    picks: list[tuple[bool, int]] = []
    get_config = bohb.get_config

    def spy(budget: object) -> object:
        models = len(bohb.kde_models)
        config, info = get_config(budget)
        picks.append((bool(info.get("model_based_pick")), models))
        return config, info

    bohb.get_config = spy
    trace = simulate(policy, suite, seed=0, budget_epochs=400, workers=4, algorithm="ray:bohb")
    assert trace.full_budget_results >= 1
    first_model_pick = next(i for i, (model_based, _) in enumerate(picks) if model_based)
    # hpbandster's default random start: no model before a budget has more than dim + 1 results.
    assert first_model_pick > len(suite.parameters) + 1
    assert all(models > 0 for model_based, models in picks if model_based)
    after = [model_based for model_based, _ in picks[first_model_pick:]]
    assert sum(after) / len(after) > 0.5  # hpbandster's default: a third of the proposals stay random
    assert set(bohb.configs) >= {1}  # the budgets reached the model through HyperBandForBOHB's results


@pytest.mark.slow
def test_ray_stand_in_makes_the_same_decisions_as_ray_tune_itself(tmp_path: Path) -> None:
    """Synchronous HyperBand (pause, resume from checkpoints, halving) through `tune.Tuner` on a one-CPU local
    Ray instance and through the simulator's controller stand-in: same trials, same epochs each (~90 s)."""
    from benchmarks.search_efficiency.ray_crosscheck import crosscheck

    result = crosscheck("hyperband", "mfh3_good@9", seed=0, trials=17, workdir=tmp_path)
    assert result["identical"], result["problems"]
    assert len({r["epochs"] for r in result["ray"]}) == 3  # stopped at 1 and 3 epochs, promoted to 9


# ------------------------------------------------------------------ Syne Tune's schedulers (synetune.py)


def test_syne_asha_stops_trials_at_its_default_rungs_and_never_retrains() -> None:
    from benchmarks.search_efficiency import get_suite, run_algorithm

    trace = run_algorithm("syne:asha", get_suite("mfh3_good"), seed=0, budget_epochs=400, record_decisions=True)
    stopped = [d for d in trace.decisions if d.reason == "stopped"]
    # Syne Tune's ASHA baseline at max_t = 27: grace period 1, reduction factor 3 -> rungs at 1, 3 and 9 epochs
    # (Ray's ASHAScheduler, reduction factor 4, stops at 1, 4 and 16 instead).
    assert len(stopped) > 0.6 * len(trace.decisions)
    assert {d.end_epoch for d in stopped} == {1, 3, 9}
    assert any(d.reason == "completed" and d.end_epoch == 27 for d in trace.decisions)
    # Stop-only (0.16 has no promotion variant): every trial is one run from epoch 0, none is resumed.
    assert all(d.start_epoch == 0 for d in trace.decisions)
    assert len(_runs_by_trial(trace.decisions)) == len(trace.decisions) == trace.trials
    assert sum(d.end_epoch - d.start_epoch for d in trace.decisions) == trace.total_epochs


def test_syne_bohb_proposes_from_its_kde_model_after_its_random_start() -> None:
    from benchmarks.search_efficiency import get_suite
    from benchmarks.search_efficiency.algorithms import registry
    from benchmarks.search_efficiency.simulator import simulate

    suite = get_suite("mfh3_good")
    policy = registry()["syne:bohb"](suite, 0)
    wrapper = policy.scheduler.searcher  # Syne Tune's LastValueMultiFidelitySearcher around the KDE searcher
    picks: list[tuple[bool, int]] = []
    suggest = wrapper.suggest

    def spy(**kwargs: object) -> object:
        if wrapper.searcher is not None:
            wrapper.searcher.good_kde = None  # set again only by a model-based proposal
        config = suggest(**kwargs)
        model_based = wrapper.searcher is not None and wrapper.searcher.good_kde is not None
        picks.append((model_based, wrapper.num_results()))
        return config

    wrapper.suggest = spy
    trace = simulate(policy, suite, seed=0, budget_epochs=600, workers=4, algorithm="syne:bohb")
    assert trace.full_budget_results >= 1
    first_model_pick = next(i for i, (model_based, _) in enumerate(picks) if model_based)
    # Syne Tune's KDE needs its "good" 15 % of the trials to outnumber the 3 dimensions: 27 trials reported.
    assert picks[first_model_pick][1] >= 27 and not any(m for m, _ in picks[:first_model_pick])
    after = [model_based for model_based, _ in picks[first_model_pick:]]
    assert 0.5 < sum(after) / len(after) < 0.9  # the default random_fraction: a third stay random


@pytest.mark.parametrize("algorithm", ["asha", "bohb"])
def test_syne_stand_in_makes_the_same_decisions_as_syne_tunes_own_tuner(algorithm: str, tmp_path: Path) -> None:
    """The same 60 trials through Syne Tune's Tuner on its own simulator backend (a blackbox replaying the Hartmann
    curve) and through the benchmark's simulator: same configurations, same epochs each (a few seconds)."""
    from collections import Counter

    from benchmarks.search_efficiency.syne_crosscheck import crosscheck

    result = crosscheck(algorithm, "mfh3_good", seed=0, trials=60, workdir=tmp_path)
    assert result["identical"], result["problems"]
    assert set(Counter(r["epochs"] for r in result["syne_tune"])) == {1, 3, 9, 27}  # every rung and max_t
    assert len({tuple(r["config"].values()) for r in result["syne_tune"]}) == 60  # no replayed proposals
