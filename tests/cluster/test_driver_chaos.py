"""Faults change nothing (issue 14, item 4), CI form: the Optuna-backed driver of a fixture sweep is killed
at 5 random points (SIGKILL or SIGTERM) and resumed each time; the finished sweep has lost no trial, trained
no epoch twice, holds every validation its trainers wrote, and made the same decisions — same trials, params,
states and champion — as the uninterrupted run with the same seed, every pruning decision the one ASHA's rule
gives for the reports held. The full form (20 kill points, both backends, another core busy) is
`python benchmarks/driver_chaos.py`."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "driver_chaos.py"


def load_chaos():  # noqa: ANN201 - the benchmark module
    spec = importlib.util.spec_from_file_location("driver_chaos", BENCH)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["driver_chaos"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_killed_and_resumed_sweep_makes_the_uninterrupted_decisions(tmp_path: Path) -> None:
    chaos = load_chaos()
    # Kill points fall 0.3-3 s after each driver start, and a start-up costs about a second of that, so each
    # driver run advances the sweep by well under its delay; 0.5 s epochs make the uninterrupted sweep last
    # several such runs even on an idle machine (with 0.2 s epochs and delays up to 4 s an idle machine
    # finished the sweep after two kills).
    result = chaos.run_chaos("optuna", kills=5, trials=5, epochs=3, epoch_s=0.5, seed=11, rng=random.Random(3),
                             work=tmp_path, max_delay_s=3.0)
    assert result.problems == []
    assert len(result.kills) >= 3, result.kills  # the sweep lasts long enough for most kill points
    assert result.trials == 5 and result.lost == 0 and result.epochs_twice == 0
    assert result.same_as_reference and result.decisions_checked == 5
    assert result.states.get("PRUNED", 0) >= 1, result.states  # the pruner did decide something
