"""The engine–trainer contract end to end, in one process and in seconds: the trainer's own status callback
(`mask2former.training.callbacks.StatusReporter`, driven as Lightning drives it) writes status.json, and the
engine's follower, its trial record and its "best" rule read exactly what was written, field for field.

No subprocess and no training: a stand-in Lightning trainer carries only the attributes the callback reads
(epoch index, global step, whether it is fitting or sanity checking).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

from hpo import selection
from hpo.trials.record import TrialRecord
from mask2former.training.callbacks import StatusReporter
from skillkit.states import RunStatus
from skillkit.status import STATUS_FILE, StatusFollower, StatusWriter, validation_of
from skillkit.status.format import CONTRACT_KEYS


def _lightning(epoch: int, step: int) -> SimpleNamespace:
    return SimpleNamespace(current_epoch=epoch, global_step=step, sanity_checking=False, state=SimpleNamespace(fn="fit"))


def test_what_the_trainer_reports_is_what_the_engine_records(tmp_path: Path) -> None:
    writer = StatusWriter(tmp_path, num_epochs=3)
    metrics: dict[str, float] | None = None
    reporter = StatusReporter(writer, metrics_fn=lambda: metrics, train_loss_fn=lambda: 1.25, lr_fn=lambda: 1e-3,
                              max_epochs=3)
    follower = StatusFollower(tmp_path / STATUS_FILE)
    writer.write(RunStatus.STARTED, "Starting training", step=0)

    # epoch 0: no validation (the schedule skipped it); epoch 1: validated at its end; epoch 2: a validation
    # whose mIoU is NaN (a diverged run) must be recorded but never be best
    for epoch, step, validated in ((0, 4, None), (1, 8, {"mIoU": 0.42, "PQ": 0.3}), (2, 12, {"mIoU": math.nan})):
        trainer = _lightning(epoch, step)
        reporter.on_train_epoch_start(trainer, None)  # type: ignore[arg-type]
        metrics = validated
        if validated is not None:
            reporter.on_validation_end(trainer, None)  # type: ignore[arg-type]
        reporter.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]

    lines = follower.poll()
    on_disk = [json.loads(text) for text in (tmp_path / STATUS_FILE).read_text().splitlines()]
    assert [line.to_record() for line in lines] == on_disk  # nothing lost or reshaped on the way
    assert all(set(CONTRACT_KEYS) <= set(record) for record in on_disk)
    assert [(line.status, line.epoch, line.step) for line in lines] == [
        (RunStatus.STARTED, None, 0), (RunStatus.RUNNING, 0, 4), (RunStatus.RUNNING, 1, 8), (RunStatus.RUNNING, 2, 12)]

    validations = [found for line in lines if (found := validation_of(line, "mIoU", now=100.0)) is not None]
    assert [(v.epoch, v.step, v.epochs_trained) for v in validations] == [(1, 8, 2)]  # NaN is no validation value
    record = TrialRecord(trial_id="t0", number=0, params={}, metric="mIoU", direction="maximize")
    for validation in validations:
        record.add_validation(validation, f"model_epoch_{validation.epoch:03d}_step_{validation.step:05d}.pth")
    (entry,) = record.history
    line = lines[2]
    assert entry["kpi"] == {"mIoU": 0.42, "PQ": 0.3, "train_loss": 1.25, "lr": 1e-3}
    assert (entry["date"], entry["time"], entry["time_per_epoch"], entry["eta"], entry["max_epoch"]) == (
        line.date, line.time, line.time_per_epoch, line.eta, 2)
    assert entry["message"] == "Epoch 1 finished (2/3 epochs) and validated"
    assert record.best == {"epoch": 1, "step": 8, "metric": 0.42, "checkpoint": "model_epoch_001_step_00008.pth"}
    assert selection.best_epoch(record.history, "mIoU", "maximize") is entry
