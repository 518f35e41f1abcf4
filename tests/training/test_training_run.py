"""Real (tiny) training runs: status.json lines, checkpoint naming and contents, EARLY_STOP_EPOCH, resume,
validation/checkpoint intervals, dry run, freeze, failures (mode mismatch, OOM)."""

from __future__ import annotations

import os

import pytest
import torch
from tqdm import tqdm

from mask2former.training import load_model_from_checkpoint, read_checkpoint, run_training
from mask2former.training.failures import OOM_EXIT_CODE, TrainingOutOfMemory
from skillkit.checkpoints import checkpoint_name
from skillkit.errors import SpecError
from skillkit.status.writer import read_status
from tests.training.training_support import NUM_CLASSES, SHARED_RUN, make_config

CONTRACT_KPI = {"mIoU", "pixel_acc", "val_loss", "train_loss", "lr", "PQ"}


def _checkpoints(folder):
    return sorted(p.name for p in folder.glob("model_epoch_*_step_*.pth"))


def test_status_lines_and_checkpoints_of_a_two_epoch_run(trained_run):
    records = read_status(trained_run)
    assert [r["status"] for r in records] == ["STARTED", "RUNNING", "RUNNING", "SUCCESS"]
    first, second = records[1], records[2]
    # TAO numbering: the line closing the first epoch says epoch 0, max_epoch is the last index (num_epochs - 1),
    # and each line names the same (epoch, step) as its checkpoint; the STARTED line has no epoch.
    assert records[0]["epoch"] is None
    assert (first["epoch"], first["step"], second["epoch"], second["step"]) == (0, 2, 1, 4)
    for line in (first, second):
        assert CONTRACT_KPI <= set(line["kpi"])
        assert 0.0 <= line["kpi"]["mIoU"] <= 1.0 and 0.0 <= line["kpi"]["PQ"] <= 1.0
        assert line["max_epoch"] == 1 and line["time_per_epoch"] > 0
        assert (trained_run / checkpoint_name(line["epoch"], line["step"])).is_file()
    assert second["eta"] == 0.0
    assert records[-1]["epoch"] == 1  # SUCCESS names the last epoch trained
    assert _checkpoints(trained_run) == ["model_epoch_000_step_00002.pth", "model_epoch_001_step_00004.pth"]
    link = trained_run / "mask2former_model_latest.pth"
    assert link.is_symlink() and os.readlink(link) == "model_epoch_001_step_00004.pth"
    assert (trained_run / "model_args.json").is_file()


def test_checkpoint_holds_spec_and_resume_state_and_rebuilds_the_model(trained_run):
    checkpoint = read_checkpoint(trained_run / "model_epoch_001_step_00004.pth")
    assert checkpoint["completed_epochs"] == 2 and checkpoint["global_step"] == 4 and checkpoint["epoch"] == 1
    assert checkpoint["optimizer_states"] and checkpoint["lr_schedulers"]
    assert checkpoint["spec"]["model"]["sem_seg_head"]["num_classes"] == NUM_CLASSES
    assert checkpoint["monitor"]["name"] == "train_loss" and checkpoint["monitor"]["value"] > 0
    model, spec = load_model_from_checkpoint(trained_run / "mask2former_model_latest.pth")
    assert spec == checkpoint["spec"] and not model.training
    weights = {k[len("model."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    for name, value in model.state_dict().items():
        assert torch.equal(value, weights[name]), name
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    assert out["pred_logits"].shape == (1, 10, NUM_CLASSES + 1)


def test_early_stop_epoch_stops_cleanly_after_that_epoch(panoptic_data, tmp_path, monkeypatch):
    monkeypatch.setenv("EARLY_STOP_EPOCH", "1")
    cfg, spec = make_config(panoptic_data, tmp_path, **{"train.num_epochs": 3, "train.iters_per_epoch": 1,
                                                         "train.validation_interval": 5,
                                                         "train.checkpoint_interval": 5})
    run_training(cfg, spec)
    records = read_status(tmp_path)
    assert [r["status"] for r in records] == ["STARTED", "RUNNING", "SUCCESS"]
    assert "mIoU" in records[1]["kpi"]  # validated although validation_interval is 5
    # EARLY_STOP_EPOCH counts epochs: =1 stops after the first one, TAO epoch 0.
    assert "EARLY_STOP_EPOCH=1" in records[-1]["message"] and records[-1]["epoch"] == 0
    assert _checkpoints(tmp_path) == ["model_epoch_000_step_00001.pth"]  # checkpointed although interval is 5


def test_resume_continues_the_same_curve(panoptic_data, trained_run, tmp_path, monkeypatch):
    """2 epochs in one go (the shared run) == 1 epoch, stop (EARLY_STOP_EPOCH), resume for the 2nd:
    same weights, optimizer state, lr and loss."""
    paused = tmp_path / "paused"
    monkeypatch.setenv("EARLY_STOP_EPOCH", "1")
    cfg, spec = make_config(panoptic_data, paused, **SHARED_RUN)
    run_training(cfg, spec)
    monkeypatch.delenv("EARLY_STOP_EPOCH")
    resume_from = paused / "model_epoch_000_step_00002.pth"
    cfg, spec = make_config(panoptic_data, paused, **SHARED_RUN,
                            **{"train.resume_training_checkpoint_path": str(resume_from)})
    run_training(cfg, spec)

    records = read_status(paused)
    assert [(r["status"], r["epoch"]) for r in records] == [
        ("STARTED", None), ("RUNNING", 0), ("SUCCESS", 0), ("STARTED", None), ("RUNNING", 1), ("SUCCESS", 1)]
    assert "Resuming training at epoch 1" in records[3]["message"]
    straight = trained_run
    a = read_checkpoint(straight / "model_epoch_001_step_00004.pth")
    b = read_checkpoint(paused / "model_epoch_001_step_00004.pth")
    for name, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    straight_lines = [r for r in read_status(straight) if r["status"] == "RUNNING"]
    assert records[4]["kpi"]["lr"] == pytest.approx(straight_lines[1]["kpi"]["lr"]) == pytest.approx(0.0005)
    assert records[4]["kpi"]["train_loss"] == pytest.approx(straight_lines[1]["kpi"]["train_loss"], rel=1e-4)
    for state_a, state_b in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()):
        torch.testing.assert_close(state_b["exp_avg"], state_a["exp_avg"], rtol=1e-4, atol=1e-6)


def test_step_checkpoints_and_validation_interval(panoptic_data, tmp_path):
    cfg, spec = make_config(panoptic_data, tmp_path, **{
        "train.num_epochs": 3, "train.iters_per_epoch": 2, "train.checkpoint_interval_unit": "step",
        "train.checkpoint_interval": 3, "train.validation_interval": 2})
    run_training(cfg, spec)
    # step 3 is in the middle of epoch 1 (0-based, as TAO names it); step 6 ends epoch 2; the last epoch is
    # always checkpointed.
    assert _checkpoints(tmp_path) == ["model_epoch_001_step_00003.pth", "model_epoch_002_step_00006.pth"]
    running = [r for r in read_status(tmp_path) if r["status"] == "RUNNING"]
    assert [r["epoch"] for r in running] == [0, 1, 2]
    assert ["mIoU" in r["kpi"] for r in running] == [False, True, True]  # every 2nd epoch, and the last
    assert set(running[0]["kpi"]) == {"train_loss", "lr"}


def test_dry_run_writes_no_checkpoint(panoptic_data, tmp_path):
    cfg, spec = make_config(panoptic_data, tmp_path, **{"train.is_dry_run": True, "train.num_epochs": 5})
    run_training(cfg, spec)
    records = read_status(tmp_path)
    assert records[-1]["status"] == "SUCCESS" and "Dry run" in records[-1]["message"]
    assert records[-1]["step"] == 1 and _checkpoints(tmp_path) == []


def test_pretrained_weights_and_freeze(panoptic_data, trained_run, tmp_path):
    """Fine-tune from the shared run's checkpoint with the backbone frozen: backbone unchanged, head trained."""
    source = trained_run / "model_epoch_001_step_00004.pth"
    cfg, spec = make_config(panoptic_data, tmp_path, **{
        "train.pretrained_model_path": str(source), "train.freeze": ["backbone"], "train.num_epochs": 1,
        "train.iters_per_epoch": 1})
    run_training(cfg, spec)
    before = read_checkpoint(source)["state_dict"]
    after = read_checkpoint(tmp_path / "model_epoch_000_step_00001.pth")["state_dict"]
    backbone = [k for k in before if k.startswith("model.backbone.")]
    head = [k for k in before if k.startswith("model.sem_seg_head.predictor.") and k.endswith("weight")]
    assert backbone and all(torch.equal(before[k], after[k]) for k in backbone)
    assert any(not torch.equal(before[k], after[k]) for k in head)


def test_mode_that_does_not_fit_the_data_fails_before_training(panoptic_data, tmp_path):
    cfg, spec = make_config(panoptic_data, tmp_path, **{"dataset.train.type": "ade",
                                                         "dataset.train.annot_file": "x.jsonl"})
    with pytest.raises(SpecError, match="model.mode=panoptic does not fit dataset.train.type=ade"):
        run_training(cfg, spec)
    last = read_status(tmp_path)[-1]
    assert last["status"] == "FAILURE" and last["error_class"] == "spec"
    assert _checkpoints(tmp_path) == []


def test_out_of_memory_ends_with_advice_and_oom_class(panoptic_data, tmp_path, monkeypatch):
    from mask2former.training.system import Mask2FormerSystem

    def explode(self, batch, batch_idx):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Mask2FormerSystem, "training_step", explode)
    cfg, spec = make_config(panoptic_data, tmp_path)
    with pytest.raises(TrainingOutOfMemory, match="smaller Swin") as caught:
        run_training(cfg, spec)
    assert caught.value.exit_code == OOM_EXIT_CODE == 10
    last = read_status(tmp_path)[-1]
    assert last["status"] == "FAILURE" and last["error_class"] == "oom" and "resolution" in last["message"]
    # The epoch's progress bar was closed when training failed: an open one would print itself once more
    # when the process exits, a stray "Epoch 0: 0%" after the error (or after pytest's summary).
    assert not [bar for bar in list(tqdm._instances) if str(bar.desc).startswith(("Epoch", "Validation"))]
