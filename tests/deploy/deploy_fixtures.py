"""Helpers shared by tests/export, tests/quantize and tests/deploy: tiny checkpoints, specs, synthetic data.

A "tiny checkpoint" has the layout `mask2former train` writes (`state_dict` with `model.` keys, the full
spec under `spec`), built from `mask2former.model.tiny` without training, so export / quantize / deploy
tests run in seconds. The slow hand-off test trains a real one.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml

from mask2former.config import config_to_dict
from mask2former.model.tiny import build_tiny_model, tiny_config

#: Square, and a multiple of 32 * the tiny Swin window (4), so every stage map is whole windows.
SMALL_SIZE = 128
NUM_CLASSES = 6  # synthetic data with contiguous_id: true


def tiny_spec(*, mode: str = "semantic", num_classes: int = NUM_CLASSES,
              overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A complete spec dict for the tiny model (every section at its default otherwise)."""
    cfg = tiny_config(num_classes, {"model.mode": mode, "dataset.contiguous_id": True, **dict(overrides or {})})
    return config_to_dict(cfg)


def write_tiny_checkpoint(path: Path, spec: Mapping[str, Any], *, seed: int = 0) -> Path:
    """Save a checkpoint in the trainer's layout for the tiny model described by `spec`."""
    num_classes = int(spec["model"]["sem_seg_head"]["num_classes"])
    model = build_tiny_model(num_classes, {"model.mode": spec["model"]["mode"]}, seed=seed)
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "spec": copy.deepcopy(dict(spec)), "format": "mask2former-lightning/1",
                "completed_epochs": 1, "epoch": 0, "global_step": 1}, path)
    return path


def with_data(spec: Mapping[str, Any], *, train: Any, val: Any, size: int) -> dict[str, Any]:
    """`spec` pointing dataset.train/val/test at synthetic roots (`SynthDataset`), evaluated at `size` x `size`."""
    out = copy.deepcopy(dict(spec))
    dataset = out["dataset"]
    dataset["label_map"] = str(train.label_map)
    dataset["contiguous_id"] = True
    dataset["train"] = train.dataset_section(batch_size=2)
    dataset["val"] = val.dataset_section(batch_size=2, target_size=[size, size])
    dataset["test"] = val.dataset_section(batch_size=2, target_size=[size, size])
    dataset["quant_calibration_dataset"] = {"images_dir": str(Path(val.split_fields.get("img_dir") or "")), }
    dataset["augmentation"]["test_min_size"] = size
    dataset["augmentation"]["test_max_size"] = size
    dataset["augmentation"]["train_crop_size"] = [size, size]
    dataset["augmentation"]["train_min_size"] = [size]
    dataset["augmentation"]["train_max_size"] = size
    return out


def write_spec(path: Path, spec: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(spec), sort_keys=False))
    return path
