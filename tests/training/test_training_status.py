"""status.json writer: the contract's keys, one flushed JSON object per line, FAILURE needs an error class."""

from __future__ import annotations

import json
import math

import pytest
import torch

from skillkit.status.writer import FAILURE, RUNNING, STARTED, SUCCESS, StatusWriter, read_status

CONTRACT_KEYS = {"date", "time", "status", "verbosity", "message", "epoch", "max_epoch", "step", "time_per_epoch",
                 "eta", "kpi"}


def test_lines_carry_every_contract_key_and_are_readable_while_open(tmp_path):
    writer = StatusWriter(tmp_path / "run", max_epoch=5)
    writer.write(STARTED, "go", epoch=0, step=0)
    writer.write(RUNNING, "epoch 1", epoch=1, step=10, time_per_epoch=2.5, eta=10.0,
                 kpi={"mIoU": torch.tensor(0.25), "val_loss": math.nan, "train_loss": 1.5})
    lines = (tmp_path / "run" / "status.json").read_text().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert all(set(r) == CONTRACT_KEYS for r in records)
    assert records[0]["status"] == "STARTED" and records[0]["max_epoch"] == 5
    running = records[1]
    assert running["kpi"] == {"mIoU": 0.25, "val_loss": None, "train_loss": 1.5}  # tensor -> float, NaN -> null
    assert running["time_per_epoch"] == 2.5 and running["eta"] == 10.0
    assert len(running["date"]) == 10 and len(running["time"]) == 8
    assert read_status(tmp_path / "run") == records


def test_failure_lines_need_a_known_error_class(tmp_path):
    writer = StatusWriter(tmp_path, max_epoch=1)
    with pytest.raises(ValueError, match="error_class"):
        writer.write(FAILURE, "boom")
    with pytest.raises(ValueError, match="error_class"):
        writer.write(FAILURE, "boom", error_class="gpu")
    record = writer.write(FAILURE, "out of memory", verbosity="ERROR", error_class="oom")
    assert record["error_class"] == "oom"
    assert read_status(tmp_path)[-1]["error_class"] == "oom"


def test_unknown_status_is_refused_and_disabled_writer_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="status must be"):
        StatusWriter(tmp_path, max_epoch=1).write("DONE", "x")
    assert StatusWriter(tmp_path / "rank1", max_epoch=1, enabled=False).write(SUCCESS, "x") is None
    assert not (tmp_path / "rank1").exists()
