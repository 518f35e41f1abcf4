"""Helpers shared by tests/export, tests/quantize and tests/deploy: tiny checkpoints, specs, synthetic data.

A "tiny checkpoint" has the layout `mask2former train` writes (`state_dict` with `model.` keys, the full
spec under `spec`), built from `mask2former.model.tiny` without training, so export / quantize / deploy
tests run in seconds. The slow hand-off test trains a real one.
"""

from __future__ import annotations

import atexit
import copy
import functools
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from mask2former.config import config_to_dict
from mask2former.model.tiny import build_tiny_model, tiny_config

#: The small export / evaluation size of the tests: square (the Swin block currently fails on some wide
#: inputs, see the report) and the smallest size whose coarsest feature map is 2x2.
SMALL_SIZE = 64
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


_SESSION_DIR: Path | None = None


def session_dir() -> Path:
    """A temporary folder shared by every test of the session (removed at exit)."""
    global _SESSION_DIR
    if _SESSION_DIR is None:
        _SESSION_DIR = Path(tempfile.mkdtemp(prefix="m2f-deploy-tests-"))
        atexit.register(shutil.rmtree, _SESSION_DIR, True)
    return _SESSION_DIR


@dataclass(frozen=True)
class Exported:
    """A tiny checkpoint and its ONNX export made with `mask2former export` (CLI)."""

    checkpoint: Path
    onnx_file: Path
    results_dir: Path
    exit_code: int


@functools.cache
def tiny_checkpoint() -> Path:
    """One tiny checkpoint (seed 0, 6 classes) for the session."""
    return write_tiny_checkpoint(session_dir() / "ckpt" / "model_epoch_001_step_00001.pth", tiny_spec())


@functools.cache
def exported(mode: str, size: int = SMALL_SIZE, batch_size: int = -1) -> Exported:
    """Export the session's tiny checkpoint for `mode` through the CLI, once per session."""
    from mask2former.cli import main

    folder = session_dir() / f"export-{mode}-{size}-{batch_size}"
    spec = {"model": {"mode": mode, "sem_seg_head": {"num_classes": NUM_CLASSES}},
            "export": {"checkpoint": str(tiny_checkpoint()), "onnx_file": str(folder / "model.onnx"),
                       "input_width": size, "input_height": size, "batch_size": batch_size},
            "results_dir": str(folder / "results")}
    code = main(["export", "-e", str(write_spec(folder / "export.yaml", spec))])
    return Exported(checkpoint=tiny_checkpoint(), onnx_file=folder / "model.onnx", results_dir=folder / "results",
                    exit_code=code)


@functools.cache
def synthetic_data(size: int = SMALL_SIZE) -> dict[str, Any]:
    """Synthetic coco_panoptic train/val roots (fits every mode), once per session."""
    from mask2former.data.synth import write_synthetic_splits

    return write_synthetic_splits(session_dir() / f"data-{size}", fmt="coco_panoptic", num_train=2, num_val=4,
                                  seed=0, size=size)
