"""A resumed run trains with its spec's optimizer settings, not those restored from the checkpoint
(PBT's explore and a user continuing with a new lr both rely on this)."""

from __future__ import annotations

import pytest

from training_support import SHARED_RUN, make_config
from mask2former.training import read_checkpoint, run_training
from skillkit.status.writer import read_status


def test_resume_applies_the_specs_lr_weight_decay_and_momentum(panoptic_data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setenv("EARLY_STOP_EPOCH", "1")
    cfg, spec = make_config(panoptic_data, run, **SHARED_RUN)
    run_training(cfg, spec)
    monkeypatch.delenv("EARLY_STOP_EPOCH")
    explored = {**SHARED_RUN, "train.optim.lr": 0.004, "train.optim.weight_decay": 0.2, "train.optim.momentum": 0.8}
    cfg, spec = make_config(panoptic_data, run, **explored,
                            **{"train.resume_training_checkpoint_path": str(run / "model_epoch_000_step_00002.pth")})
    run_training(cfg, spec)

    running = [r for r in read_status(run) if r["status"] == "RUNNING"]
    assert running[0]["kpi"]["lr"] == pytest.approx(0.001 * 0.5)    # old lr after the epoch-1 milestone
    assert running[1]["kpi"]["lr"] == pytest.approx(0.004 * 0.5)    # new base lr, schedule position kept
    groups = read_checkpoint(run / "model_epoch_001_step_00004.pth")["optimizer_states"][0]["param_groups"]
    decayed = [g for g in groups if g["weight_decay"] > 0]
    assert decayed and all(g["weight_decay"] == pytest.approx(0.2) for g in decayed)
    assert all(g["betas"][0] == pytest.approx(0.8) for g in groups)
    assert max(g["initial_lr"] for g in groups) == pytest.approx(0.004)
