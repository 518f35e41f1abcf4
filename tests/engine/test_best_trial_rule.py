"""The sweep's reported best and the promoted trial follow one rule: only COMPLETED trials qualify."""

from __future__ import annotations

import math
from types import SimpleNamespace

from hpo.tracking.compare import _best_child
from hpo.trials.candidates import ELIGIBLE_STATES
from hpo.trials.record import COMPLETED, FAILED, PAUSED, PRUNED, TrialRecord, best_trial


def _record(trial_id: str, state: str, metric: float) -> TrialRecord:
    record = TrialRecord(trial_id=trial_id, number=0, params={}, metric="mIoU", direction="maximize", state=state)
    record.best = {"epoch": 1, "step": 2, "metric": metric, "checkpoint": "model_epoch_001_step_00002.pth"}
    return record


def test_pruned_paused_and_failed_trials_never_become_best() -> None:
    records = [_record("pruned", PRUNED, 0.9), _record("paused", PAUSED, 0.8), _record("failed", FAILED, 0.95),
               _record("done", COMPLETED, 0.5), _record("done-worse", COMPLETED, 0.4)]
    assert best_trial(records, "maximize").trial_id == "done"
    assert best_trial(records[:3], "maximize") is None


def test_promotion_uses_the_same_states() -> None:
    assert ELIGIBLE_STATES == (COMPLETED,)


def _run(number: int | None, value: float, status: str = "FINISHED", state: str = "COMPLETED") -> SimpleNamespace:
    tags = {"hpo.state": state, "hpo.trial_id": f"t{number}"}
    if number is not None:
        tags["hpo.trial_number"] = str(number)
    return SimpleNamespace(info=SimpleNamespace(status=status),
                           data=SimpleNamespace(metrics={"best_mIoU": value}, tags=tags, params={}))


def test_sweep_comparison_picks_the_best_mlflow_run_by_the_same_rule() -> None:
    """`hpo compare` on runs without a parent best: NaN never wins, a tie goes to the lowest trial number,
    a pruned run never qualifies (max() over the values got NaN and ties by list order wrong)."""
    runs = [_run(3, 0.7), _run(1, math.nan), _run(2, 0.7), _run(0, 0.9, state="PRUNED")]
    assert _best_child(runs, "mIoU", "maximize").data.tags["hpo.trial_id"] == "t2"
    assert _best_child([_run(1, math.nan), _run(0, 0.9, state="PRUNED")], "mIoU", "maximize") is None
    assert _best_child([_run(5, 0.2), _run(4, 0.3)], "mIoU", "minimize").data.tags["hpo.trial_id"] == "t5"
