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


# New values for every parameter the schema marks hot (x_pbt: hot), as PBT's explore step would set them.
EXPLORED_HOT = {"train.optim.lr": 0.004, "train.optim.weight_decay": 0.2, "train.optim.momentum": 0.8,
                "train.optim.backbone_multiplier": 0.5, "model.mask_former.class_weight": 3.0,
                "model.mask_former.dice_weight": 7.0, "model.mask_former.mask_weight": 9.0,
                "model.mask_former.no_object_weight": 0.3, "model.mask_former.dropout": 0.15,
                "model.backbone.swin.drop_path_rate": 0.25}


def _hot_parameters() -> set[str]:
    """The dotted names the committed train schema marks `x_pbt: hot`."""
    import json
    from pathlib import Path

    schema = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "train.schema.json").read_text())
    found: set[str] = set()

    def walk(node: dict, prefix: str) -> None:
        for key, child in (node.get("properties") or {}).items():
            if isinstance(child, dict):
                if child.get("x_pbt") == "hot":
                    found.add(prefix + key)
                walk(child, f"{prefix}{key}.")

    walk(schema, "")
    return found


def test_every_hot_parameter_takes_effect_when_a_run_resumes(panoptic_data, tmp_path, monkeypatch):
    """PBT perturbs only hot parameters and continues from a checkpoint, so each one must reach the resumed
    run (loss, matcher, model, optimizer) or its perturbation silently does nothing. The list checked is the
    schema's own: a parameter newly marked hot must be added here, with what proves it took effect."""
    from torch import nn

    from mask2former.model.backbone.swin_layers import DropPath
    from mask2former.training.system import Mask2FormerSystem
    from skillkit.spec import get_dotted

    assert set(EXPLORED_HOT) == _hot_parameters()
    run = tmp_path / "run"
    monkeypatch.setenv("EARLY_STOP_EPOCH", "1")
    run_training(*make_config(panoptic_data, run, **SHARED_RUN))
    monkeypatch.delenv("EARLY_STOP_EPOCH")

    resumed: list[Mask2FormerSystem] = []
    on_train_start = Mask2FormerSystem.on_train_start

    def record(system: Mask2FormerSystem) -> None:
        on_train_start(system)
        resumed.append(system)

    monkeypatch.setattr(Mask2FormerSystem, "on_train_start", record)
    checkpoint = str(run / "model_epoch_000_step_00002.pth")
    trained = read_checkpoint(checkpoint)["spec"]
    assert all(get_dotted(trained, name) != value for name, value in EXPLORED_HOT.items())  # every one changes
    run_training(*make_config(panoptic_data, run, **{**SHARED_RUN, **EXPLORED_HOT,
                                                      "train.resume_training_checkpoint_path": checkpoint}))
    (system,) = resumed
    assert system.trainer.ckpt_path  # it did resume

    criterion = system.criterion
    assert criterion.weight_dict == {"loss_ce": 3.0, "loss_mask": 9.0, "loss_dice": 7.0}
    assert criterion.empty_weight[-1].item() == pytest.approx(0.3)
    assert (criterion.matcher.cost_class, criterion.matcher.cost_mask, criterion.matcher.cost_dice) == (3.0, 9.0, 7.0)

    decoder = system.model.sem_seg_head.predictor
    dropouts = [m.p for m in decoder.modules() if isinstance(m, nn.Dropout)]
    dropouts += [m.dropout for m in decoder.modules() if isinstance(m, nn.MultiheadAttention)]
    assert dropouts and all(p == pytest.approx(0.15) for p in dropouts)
    drop_paths = [m.drop_prob for m in system.model.backbone.modules() if isinstance(m, DropPath)]
    assert drop_paths and max(drop_paths) == pytest.approx(0.25)  # stochastic depth grows linearly to the rate

    groups = {g["name"]: g for g in system.trainer.optimizers[0].param_groups}
    assert groups["head_decay"]["initial_lr"] == pytest.approx(0.004)
    assert groups["backbone_decay"]["initial_lr"] == pytest.approx(0.004 * 0.5)
    assert groups["head_decay"]["weight_decay"] == pytest.approx(0.2)
    assert all(g["betas"][0] == pytest.approx(0.8) for g in groups.values())


def test_mask2former_train_refuses_a_resume_that_does_not_fit_with_one_paragraph_and_exit_3(panoptic_data,
                                                                                           trained_run, tmp_path):
    """Through the real command, as the engine launches a trial: exit code 3 (spec), a one-paragraph message
    naming the differing key, a `spec` FAILURE line for the engine to classify, no traceback."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.training.training_support import write_spec_file

    spec = write_spec_file(tmp_path / "spec.yaml", panoptic_data, tmp_path / "resumed", **{
        **SHARED_RUN, "train.num_epochs": 3, "model.mask_former.hidden_dim": 48,
        "train.resume_training_checkpoint_path": str(trained_run / "model_epoch_000_step_00002.pth")})
    done = subprocess.run([str(Path(sys.executable).parent / "mask2former"), "train", "-e", str(spec)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    (line,) = [text for text in (done.stdout + done.stderr).splitlines() if "does not fit" in text]
    assert line.startswith("error: ") and "model.mask_former.hidden_dim" in line
    failure = [r for r in read_status(tmp_path / "resumed") if r["status"] == "FAILURE"]
    assert failure and failure[-1]["error_class"] == "spec"
