"""`train.pretrained_model_path` (class-count changes re-initialise only the class head) and checkpoint reading."""

from __future__ import annotations

import pytest
import torch

from mask2former.model.tiny import build_tiny_model
from mask2former.training.checkpoint_io import model_state_dict, read_checkpoint
from mask2former.training.model_setup import load_pretrained
from skillkit.errors import DataError, SpecError


def test_changed_class_count_reinitialises_only_the_class_head(tmp_path):
    source = build_tiny_model(num_classes=8, seed=1)
    path = tmp_path / "pretrained.pth"
    torch.save({"model": source.state_dict()}, path)  # plain {"model": state_dict} weights file
    target = build_tiny_model(num_classes=12, seed=2)
    head_before = {k: v.clone() for k, v in target.state_dict().items() if "class_embed." in k}
    report = load_pretrained(target, path)
    assert report.reinitialised_class_head == ("sem_seg_head.predictor.class_embed.bias",
                                               "sem_seg_head.predictor.class_embed.weight")
    assert any("class head" in line and "re-initialised" in line for line in report.notices(str(path)))
    state, original = target.state_dict(), source.state_dict()
    for key, value in state.items():
        if "class_embed." in key:
            assert torch.equal(value, head_before[key])  # untouched: keeps its fresh initialisation
        else:
            assert torch.equal(value, original[key]), key
    assert report.missing == () and report.unexpected == ()


def test_other_shape_mismatch_is_an_error_naming_the_keys(tmp_path):
    path = tmp_path / "wide.pth"
    torch.save({"state_dict": {f"model.{k}": v for k, v in build_tiny_model(
        overrides={"model.mask_former.hidden_dim": 48}).state_dict().items()}}, path)
    expected = r"different architecture.*self_attn.in_proj_weight: pretrained \(144, 48\) vs model \(96, 32\)"
    with pytest.raises(SpecError, match=expected):
        load_pretrained(build_tiny_model(), path)


def test_unrelated_or_unreadable_files_are_clear_errors(tmp_path):
    torch.save({"model": {"something.else": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(SpecError, match="shares no tensor name"):
        load_pretrained(build_tiny_model(), tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="junk.pth.*cannot be read"):
        read_checkpoint(tmp_path / "junk.pth")
    with pytest.raises(DataError, match="does not exist"):
        read_checkpoint(tmp_path / "absent.pth")
    with pytest.raises(DataError, match="no model state dict"):
        model_state_dict({"epoch": 3})


def test_activation_checkpoint_switches_on_the_backbone_checkpointing():
    from mask2former.model.tiny import tiny_config
    from mask2former.training.trainer import build_model_and_criterion

    cfg = tiny_config()
    plain, _ = build_model_and_criterion(cfg)
    cfg.train.activation_checkpoint = True
    checkpointed, _ = build_model_and_criterion(cfg)
    assert not any(layer.use_checkpoint for layer in plain.backbone.layers)
    assert all(layer.use_checkpoint for layer in checkpointed.backbone.layers)
    assert cfg.model.backbone.swin.use_checkpoint is False  # the caller's config is left as it was
    evit = tiny_config(overrides={"model.backbone.type": "efficientvit", "model.backbone.efficientvit.name": "b0"})
    assert not build_model_and_criterion(evit)[0].backbone.use_checkpoint
    evit.train.activation_checkpoint = True
    assert build_model_and_criterion(evit)[0].backbone.use_checkpoint
    assert evit.model.backbone.efficientvit.use_checkpoint is False
