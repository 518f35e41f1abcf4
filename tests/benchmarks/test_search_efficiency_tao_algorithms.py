"""TAO AutoML's dehb, bfbo and hyperband_es as the engine runs them (`ours:<name>`), in the search-efficiency
simulator: built by the engine's own factories, deterministic, and each showing its distinctive behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # benchmarks/ is importable through pytest's pythonpath (pyproject)

BUDGET = 234  # one TAO-Hyperband iteration at R = 27


pytestmark = pytest.mark.usefixtures("bench_env")


def _sweep(name: str, seed: int = 0, budget: int = BUDGET) -> tuple[object, object]:
    from benchmarks.search_efficiency.algorithms import registry
    from benchmarks.search_efficiency.simulator import simulate
    from benchmarks.search_efficiency.suites import get_suite

    suite = get_suite("mfh3_good")
    policy = registry()[name](suite, seed)
    return policy, simulate(policy, suite, seed=seed, budget_epochs=budget, workers=4, algorithm=name)


def test_the_three_are_benchmarked_as_hpo_run_configures_them() -> None:
    from benchmarks.search_efficiency.algorithms import registry, skipped

    for name in ("dehb", "bfbo", "hyperband_es"):
        assert f"ours:{name}" in registry() and name not in skipped()


@pytest.mark.parametrize("name", ["ours:dehb", "ours:bfbo", "ours:hyperband_es"])
def test_each_runs_deterministically_and_shows_its_behaviour(name: str) -> None:
    # hyperband_es: two iterations, so trials run past 4 epochs once a full-budget result exists
    budget = 2 * BUDGET if name == "ours:hyperband_es" else BUDGET
    policy, trace = _sweep(name, budget=budget)
    _, again = _sweep(name, budget=budget)
    assert (trace.epochs, trace.regret, trace.trials) == (again.epochs, again.regret, again.trials)
    assert trace.full_budget_results > 0 and budget <= trace.total_epochs < budget + 4  # runs in flight end their epoch
    trials = policy.study.get_trials(deepcopy=False)
    if name == "ours:dehb":
        notes = [t.system_attrs["hpo_proposal"] for t in trials if "hpo_proposal" in t.system_attrs]
        assert notes and all(note["population"] >= 4 for note in notes)
    elif name == "ours:bfbo":
        notes = [t.system_attrs["hpo_proposal"] for t in trials if "hpo_proposal" in t.system_attrs]
        assert any(note["pending"] == 3 for note in notes)  # proposed beside three running trials
    else:
        stops = [t.user_attrs["early_stop"] for t in trials if "early_stop" in t.user_attrs]
        assert stops and all(s["epochs_trained"] < 27 for s in stops)
