"""Checkpoint names: TAO's format and numbering, the one parser, "the checkpoint for epoch N", the latest
link, and files written before this project numbered epochs like TAO."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skillkit.checkpoints import (
    checkpoint_for,
    checkpoint_name,
    checkpoints_of_epoch,
    epochs_trained,
    find_latest_link,
    last_epoch_index,
    latest_link_name,
    list_checkpoints,
    parse_checkpoint_name,
    point_latest_link,
)


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"x")


def test_names_follow_taos_template_and_numbering():
    # TAO's first epoch (Lightning's current_epoch 0) is model_epoch_000, as in the skill card's example.
    assert checkpoint_name(0, 120) == "model_epoch_000_step_00120.pth"
    assert checkpoint_name(1234, 1234567) == "model_epoch_1234_step_1234567.pth"  # widths are minimums
    assert parse_checkpoint_name("model_epoch_000_step_00120.pth") == (0, 120)
    assert parse_checkpoint_name(Path("/x/model_epoch_1234_step_1234567.pth")) == (1234, 1234567)
    for other in ("model_epoch_1_step_00001.pth", "model_epoch_001_step_1.pth", "model_epoch_001_step_00001.ckpt",
                  "mask2former_model_latest.pth", "model_epoch_001_step_00001.pth.tmp"):
        assert parse_checkpoint_name(other) is None, other
    with pytest.raises(ValueError, match="epoch >= 0"):
        checkpoint_name(-1, 0)
    assert (epochs_trained(0), last_epoch_index(10)) == (1, 9)


def test_listing_and_the_checkpoint_of_a_validation(tmp_path):
    _touch(tmp_path, "model_epoch_000_step_00004.pth", "model_epoch_001_step_00006.pth",  # 6: mid-epoch (SIGTERM)
           "model_epoch_001_step_00008.pth", "notes.txt")
    os.symlink("model_epoch_001_step_00008.pth", tmp_path / "mask2former_model_latest.pth")
    assert [(c.epoch, c.step) for c in list_checkpoints(tmp_path)] == [(0, 4), (1, 6), (1, 8)]
    assert [c.step for c in checkpoints_of_epoch(tmp_path, 1)] == [6, 8]
    assert checkpoint_for(tmp_path, 1, 8).name == "model_epoch_001_step_00008.pth"
    assert checkpoint_for(tmp_path, 1, 7).name == "model_epoch_001_step_00006.pth"  # newest not later than step 7
    assert checkpoint_for(tmp_path, 1, None).name == "model_epoch_001_step_00008.pth"
    assert checkpoint_for(tmp_path, 2, 12) is None
    assert list_checkpoints(tmp_path / "missing") == []


def test_files_of_the_old_numbering_are_found_by_their_step(tmp_path):
    """Before TAO numbering, the checkpoint closing the first epoch was model_epoch_001; the validation of
    TAO epoch 0 at step 4 still finds it, by (epoch + 1, same step)."""
    _touch(tmp_path, "model_epoch_001_step_00004.pth", "model_epoch_002_step_00008.pth")
    assert checkpoint_for(tmp_path, 0, 4).name == "model_epoch_001_step_00004.pth"
    assert checkpoint_for(tmp_path, 1, 8).name == "model_epoch_002_step_00008.pth"


def test_latest_link(tmp_path):
    assert latest_link_name("mask2former_model") == "mask2former_model_latest.pth"
    assert find_latest_link(tmp_path) is None
    _touch(tmp_path, "model_epoch_000_step_00004.pth", "model_epoch_001_step_00008.pth")
    point_latest_link(tmp_path, "mask2former_model", "model_epoch_000_step_00004.pth")
    link = point_latest_link(tmp_path, "mask2former_model", "model_epoch_001_step_00008.pth")
    assert os.readlink(link) == "model_epoch_001_step_00008.pth"  # relative, re-pointed in place
    assert find_latest_link(tmp_path) == link
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind
