"""status.json: the writer's lines carry the contract's keys, and what the trainer's writer writes is
exactly what the engine's follower reads (the contract in one test, no subprocess)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from skillkit.states import ErrorClass, RunStatus
from skillkit.status import StatusFollower, StatusLine, StatusWriter, read_status, read_validations, validation_of
from skillkit.status.format import CONTRACT_KEYS
from skillkit.status.writer import FAILURE, RUNNING, STARTED, SUCCESS


def test_lines_carry_every_contract_key_and_are_readable_while_open(tmp_path):
    writer = StatusWriter(tmp_path / "run", num_epochs=6)
    writer.write(STARTED, "go", step=0)
    writer.write(RUNNING, "epoch 0", epoch=0, step=10, time_per_epoch=2.5, eta=10.0,
                 kpi={"mIoU": torch.tensor(0.25), "val_loss": math.nan, "train_loss": 1.5})
    lines = (tmp_path / "run" / "status.json").read_text().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert all(set(r) == set(CONTRACT_KEYS) for r in records)
    assert records[0]["status"] == "STARTED" and records[0]["max_epoch"] == 5  # TAO: index of the last epoch
    running = records[1]
    assert running["kpi"] == {"mIoU": 0.25, "val_loss": None, "train_loss": 1.5}  # tensor -> float, NaN -> null
    assert running["time_per_epoch"] == 2.5 and running["eta"] == 10.0
    assert len(running["date"]) == 10 and len(running["time"]) == 8
    assert read_status(tmp_path / "run") == records


def test_failure_lines_need_a_known_error_class(tmp_path):
    writer = StatusWriter(tmp_path, num_epochs=1)
    with pytest.raises(ValueError, match="error_class"):
        writer.write(FAILURE, "boom")
    with pytest.raises(ValueError, match="'gpu' is not a valid ErrorClass"):
        writer.write(FAILURE, "boom", error_class="gpu")
    line = writer.write(FAILURE, "out of memory", verbosity="ERROR", error_class="oom")
    assert line.error_class == ErrorClass.OOM
    assert read_status(tmp_path)[-1]["error_class"] == "oom"


def test_unknown_status_is_refused_and_disabled_writer_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="'DONE' is not a valid RunStatus"):
        StatusWriter(tmp_path, num_epochs=1).write("DONE", "x")
    assert StatusWriter(tmp_path / "rank1", num_epochs=1, enabled=False).write(SUCCESS, "x") is None
    assert not (tmp_path / "rank1").exists()


def test_what_the_writer_writes_the_follower_reads_line_for_line(tmp_path):
    """The trainer's writer and the engine's follower share one format: every field survives the trip,
    a half-written line is held back until its newline arrives, and validations come out once each."""
    writer = StatusWriter(tmp_path, num_epochs=3)
    follower = StatusFollower(tmp_path / "status.json")
    assert follower.poll() == []  # no file yet
    written = [
        writer.write(STARTED, "Starting training", step=0),
        writer.write(RUNNING, "Epoch 0 finished", epoch=0, step=4, time_per_epoch=1.5, eta=3.0,
                     kpi={"train_loss": 2.0, "lr": 1e-3}),
        writer.write(RUNNING, "Epoch 1 finished and validated", epoch=1, step=8, time_per_epoch=1.25, eta=1.25,
                     kpi={"mIoU": 0.42, "PQ": 0.3, "train_loss": 1.5, "lr": 1e-3}),
    ]
    read = follower.poll()
    assert read == written
    with open(tmp_path / "status.json", "a", encoding="utf-8") as handle:  # a writer caught mid-line
        handle.write('{"status": "RUNNING", "epoch": 2')
    assert follower.poll() == []
    with open(tmp_path / "status.json", "a", encoding="utf-8") as handle:
        handle.write(', "step": 12, "kpi": {"mIoU": 0.5}}\n')
    (late,) = follower.poll()
    assert (late.epoch, late.step, late.metric("mIoU")) == (2, 12, 0.5)

    validations = [found for line in read if (found := validation_of(line, "mIoU", now=7.0))]
    assert len(validations) == 1
    validation = validations[0]
    assert (validation.epoch, validation.epochs_trained, validation.step, validation.value) == (1, 2, 8, 0.42)
    entry = validation.to_history()
    assert entry["date"] == written[2].date and entry["time"] == written[2].time
    assert entry["time_per_epoch"] == 1.25 and entry["kpi"]["PQ"] == 0.3 and entry["seen_at"] == 7.0
    assert type(validation).from_history(entry, "mIoU") == validation
    assert [v.epoch for v in read_validations(tmp_path / "status.json", "mIoU")] == [1, 2]


def test_tao_written_lines_are_read(tmp_path):
    """TAO's own trainer writes M/D/YYYY dates, durations as text and extra keys; all of it is understood."""
    lines = [
        {"date": "1/5/2026", "time": "9:4:7", "status": "STARTED", "verbosity": "INFO", "message": "Starting Training Loop."},
        {"epoch": 0, "step": 120, "max_epoch": 9, "max_step": 1200, "time_per_epoch": "0:01:02.500000",
         "time_per_step": "0:00:00.520833", "eta": "0:09:22.500000", "date": "1/5/2026", "time": "9:5:9",
         "status": "RUNNING", "verbosity": "INFO", "message": "Training loop in progress",
         "kpi": {"val_loss": 1.1, "mIoU": 0.37, "ACC_all": 0.8}},
        {"date": "1/5/2026", "time": "9:6:0", "status": "FAILURE", "verbosity": "ERROR", "message": "boom"},
    ]
    (tmp_path / "status.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    started, running, failure = StatusFollower(tmp_path / "status.json").poll()
    assert started.epoch is None and started.timestamp is not None
    assert (running.epoch, running.max_epoch, running.time_per_epoch, running.eta) == (0, 9, 62.5, 562.5)
    assert failure.status == RunStatus.FAILURE and failure.error_class == ErrorClass.INTERNAL
    assert [v.epoch for v in read_validations(tmp_path / "status.json", "mIoU")] == [0]


def test_lines_of_the_old_numbering_are_converted_once(tmp_path):
    """Runs written before TAO numbering counted completed epochs (and said so on their STARTED line); a
    trial resumed after the upgrade appends TAO-numbered lines to the same file."""
    old = StatusLine(RunStatus.STARTED, "Starting training", epoch=0, max_epoch=3, step=0)
    old_epochs = [StatusLine(RunStatus.RUNNING, f"Epoch {n}/3", epoch=n, max_epoch=3, step=4 * n, kpi={"mIoU": n / 10})
                  for n in (1, 2)]
    new_start = StatusLine(RunStatus.STARTED, "Resuming training at epoch 2", step=8)
    new_epoch = StatusLine(RunStatus.RUNNING, "Epoch 2 finished", epoch=2, max_epoch=2, step=12, kpi={"mIoU": 0.3})
    (tmp_path / "status.json").write_text(
        "".join(line.to_json() + "\n" for line in (old, *old_epochs, new_start, new_epoch)))
    validations = read_validations(tmp_path / "status.json", "mIoU")
    assert [(v.epoch, v.step, v.value) for v in validations] == [(0, 4, 0.1), (1, 8, 0.2), (2, 12, 0.3)]
    assert all(v.line.max_epoch == 2 for v in validations)
