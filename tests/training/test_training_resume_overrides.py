"""A resumed run trains with its spec's optimizer settings, not those restored from the checkpoint
(PBT's explore and a user continuing with a new lr both rely on this)."""

from __future__ import annotations

import pytest

from mask2former.training import read_checkpoint, run_training
from skillkit.status.writer import read_status
from tests.training.training_support import SHARED_RUN, make_config


def test_resume_applies_the_specs_lr_weight_decay_and_momentum(panoptic_data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setenv("EARLY_STOP_EPOCH", "1")
    cfg, spec = make_config(panoptic_data, run, **SHARED_RUN)
    run_training(cfg, spec)
    monkeypatch.delenv("EARLY_STOP_EPOCH")
    explored = {**SHARED_RUN, "train.optim.lr": 0.004, "train.optim.weight_decay": 0.2, "train.optim.momentum": 0.8,
                # hot loss settings too: they live in the spec, not in the checkpoint's weights
                "model.mask_former.no_object_weight": 0.3, "model.mask_former.class_weight": 3.0}
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


def test_the_checkpoint_holds_no_loss_settings_so_hot_ones_take_effect_on_resume(trained_run):
    """`no_object_weight` used to be a saved buffer: a resumed (PBT-explored) trial silently kept the old one."""
    state = read_checkpoint(sorted(trained_run.glob("model_epoch_*.pth"))[-1])["state_dict"]
    assert state and not [key for key in state if key.startswith("criterion.")]


def test_a_resume_whose_checkpoint_does_not_fit_is_a_spec_failure_naming_the_cause(panoptic_data, tmp_path,
                                                                                   monkeypatch):
    from skillkit.errors import SpecError

    run = tmp_path / "run"
    monkeypatch.setenv("EARLY_STOP_EPOCH", "1")
    cfg, spec = make_config(panoptic_data, run, **SHARED_RUN)
    run_training(cfg, spec)
    monkeypatch.delenv("EARLY_STOP_EPOCH")
    cold = {**SHARED_RUN, "model.mask_former.hidden_dim": 48,
            "train.resume_training_checkpoint_path": str(run / "model_epoch_000_step_00002.pth")}
    cfg, spec = make_config(panoptic_data, tmp_path / "resumed", **cold)
    with pytest.raises(SpecError) as caught:
        run_training(cfg, spec)
    message = str(caught.value)
    assert "does not fit the model this spec builds" in message and "model.mask_former.hidden_dim" in message
    assert "\n" not in message and "size mismatch" not in message
    failure = [r for r in read_status(tmp_path / "resumed") if r["status"] == "FAILURE"]
    assert failure and failure[-1].get("error_class") == "spec"
