"""Versioned state dicts: old layouts are migrated on load (`_version` + `_migrations`)."""

from __future__ import annotations

import io

import torch
from torch import nn

from mask2former.model.tiny import build_tiny_model
from mask2former.model.versioning import VersionedModule, migrate_state_dict, rename_key


class HeadV1(nn.Module):
    """The old layout: the classifier was called `classifier`."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier = nn.Linear(4, 3)


class HeadV2(VersionedModule):
    """The current layout: renamed to `class_embed` in version 2."""

    _version = 2
    _migrations = {1: lambda sd, prefix: rename_key(sd, prefix, "classifier.", "class_embed.")}

    def __init__(self) -> None:
        super().__init__()
        self.class_embed = nn.Linear(4, 3)


class Wrapper(nn.Module):
    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head


def _roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_old_checkpoint_is_migrated_on_load() -> None:
    old = Wrapper(HeadV1())
    saved = _roundtrip(old.state_dict())  # metadata says version 1 for `head`
    assert saved._metadata["head"]["version"] == 1
    new = Wrapper(HeadV2())
    new.load_state_dict(saved)  # strict: every key found after the rename
    torch.testing.assert_close(new.head.class_embed.weight, old.head.classifier.weight)


def test_current_checkpoint_and_metadata_free_dicts_load() -> None:
    new = Wrapper(HeadV2())
    again = Wrapper(HeadV2())
    again.load_state_dict(_roundtrip(new.state_dict()))
    torch.testing.assert_close(again.head.class_embed.bias, new.head.class_embed.bias)
    plain_old = {k: v for k, v in Wrapper(HeadV1()).state_dict().items()}  # a plain dict: no metadata
    again.load_state_dict(plain_old)  # unknown version: every (idempotent) step runs
    plain_new = dict(new.state_dict())
    again.load_state_dict(plain_new)  # ... and leaves current keys alone


def test_migrate_state_dict_runs_only_needed_steps() -> None:
    seen = []
    steps = {1: lambda sd, p: seen.append(1), 2: lambda sd, p: seen.append(2)}
    assert migrate_state_dict({}, "", saved_version=2, current_version=3, migrations=steps) == [2]
    assert migrate_state_dict({}, "", saved_version=3, current_version=3, migrations=steps) == []
    assert migrate_state_dict({}, "", saved_version=None, current_version=3, migrations=steps) == [1, 2]
    assert seen == [2, 1, 2]


def test_model_state_dict_roundtrip_keeps_outputs() -> None:
    model = build_tiny_model(seed=1).eval()
    other = build_tiny_model(seed=2).eval()
    other.load_state_dict(_roundtrip(model.state_dict()))
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(other(images)["pred_masks"], model(images)["pred_masks"])
