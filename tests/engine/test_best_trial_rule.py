"""The sweep's reported best and the promoted trial follow one rule: only COMPLETED trials qualify."""

from __future__ import annotations

from hpo.promotion.selection import ELIGIBLE_STATES
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
