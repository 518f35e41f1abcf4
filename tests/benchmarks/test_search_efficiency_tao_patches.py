"""The TAO adapter's two speed-only patches (benchmarks/search_efficiency/tao.py: in-memory state with JSON
normalisation on read, BOHB's duplicate check vectorised) change no decision: whole sweeps of TAO's own
brains give the same traces with and without them."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 234  # one TAO-Hyperband iteration at R = 27


pytestmark = pytest.mark.usefixtures("bench_env")


def _sweep(name: str, suite_name: str, seed: int) -> tuple[object, object]:
    from benchmarks.search_efficiency.algorithms import registry
    from benchmarks.search_efficiency.simulator import simulate
    from benchmarks.search_efficiency.suites import get_suite

    suite = get_suite(suite_name)
    policy = registry()[name](suite, seed)
    trace = simulate(policy, suite, seed=seed, budget_epochs=BUDGET, workers=4, algorithm=name)
    return policy, trace


@pytest.mark.parametrize(("name", "suite", "seed"), [("tao_bohb", "mfh3_good", 0), ("tao_bohb", "mfh6_bad", 1),
                                                     ("tao_bayesian", "mfh3_good", 0)])
def test_the_speed_patches_change_no_decision(name: str, suite: str, seed: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.search_efficiency import tao

    patched_policy, patched = _sweep(name, suite, seed)
    monkeypatch.setattr(tao, "SPEED_PATCHES", False)
    tao.remove_speed_patches()
    try:
        plain_policy, plain = _sweep(name, suite, seed)
        assert any(Path(plain_policy.workspace).rglob("*.json"))  # TAO's own StateStore wrote its files
    finally:
        tao.install_speed_patches()
    assert (patched.epochs, patched.regret, patched.trials, patched.total_epochs, patched.full_budget_results) == (
        plain.epochs, plain.regret, plain.trials, plain.total_epochs, plain.full_budget_results)
    assert patched.trials >= 9 and patched.full_budget_results >= 4  # the brains made real decisions in it


def test_the_vectorised_duplicate_check_keeps_what_tao_keeps() -> None:
    """A history where configurations recur (a repeated one with another result, as a re-run would give):
    the patched check keeps exactly the observations TAO's own loop keeps, the first result of each."""
    import copy

    import numpy as np
    from tao_automl.brain.bohb import BOHB

    from benchmarks.search_efficiency import tao

    policy, _ = _sweep("tao_bohb", "mfh3_good", 2)
    controller = policy.automl._controller
    history = list(controller.history)
    repeats = []
    for rec in history[:12:2]:
        again = copy.copy(rec)
        again.result = (rec.result or 0.0) + 1.0
        repeats.append(again)
    history = history[:6] + repeats + history[6:]
    brain = controller.brain
    kept = {}
    for label, method in (("tao", tao._ORIGINALS[(BOHB, "_update_observations")]), ("patched", BOHB._update_observations)):
        brain.observations = []
        method(brain, history)
        kept[label] = brain.observations
    assert len(kept["tao"]) == len(kept["patched"]) < len([r for r in history if r.result is not None])
    for (tao_config, tao_result), (our_config, our_result) in zip(kept["tao"], kept["patched"], strict=True):
        assert np.array_equal(tao_config, our_config) and tao_result == our_result
