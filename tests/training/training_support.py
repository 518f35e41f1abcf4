"""Helpers for training tests: tiny-model specs on synthetic coco_panoptic data (see conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from mask2former.config import config_from_dict
from mask2former.model.tiny import tiny_spec_overrides
from skillkit.spec import load_spec, set_dotted

NUM_CLASSES = 8  # synthetic raw ids go up to 7 (contiguous_id false)


def spec_overrides(data: Path, results_dir: Path, **extra: Any) -> dict[str, Any]:
    """Dotted key -> value of a tiny, fast training spec on `data` (train/ and val/ roots)."""
    values: dict[str, Any] = dict(tiny_spec_overrides(num_classes=NUM_CLASSES))
    values.update({
        "model.mask_former.train_num_points": 256,
        "dataset.label_map": str(data / "train" / "label_map_panoptic.json"),
        "dataset.augmentation.train_min_size": [64],
        "dataset.augmentation.train_max_size": 128,
        "dataset.augmentation.train_crop_size": [64, 64],
        "dataset.augmentation.test_min_size": 64,
        "dataset.augmentation.test_max_size": 128,
        "dataset.pin_memory": False,
        "wandb.enable": False,
        "results_dir": str(results_dir),
        "train.num_epochs": 2,
        "train.iters_per_epoch": 2,
        "train.seed": 7,
    })
    for split, folder in (("train", "train"), ("val", "val"), ("test", "val")):
        root = data / folder
        values.update({
            f"dataset.{split}.type": "coco_panoptic",
            f"dataset.{split}.panoptic_json": str(root / "annotations_panoptic.json"),
            f"dataset.{split}.img_dir": str(root / "images.tar.gz"),
            f"dataset.{split}.panoptic_dir": str(root / "images_panoptic.tar.gz"),
            f"dataset.{split}.batch_size": 2,
            f"dataset.{split}.num_workers": 0,
        })
    values.update(extra)
    return values


# The shared run's schedule: the lr halves after epoch 1, so resuming must restore the scheduler too.
SHARED_RUN = {"train.num_epochs": 2, "train.optim.lr_scheduler": "MultiStep", "train.optim.milestones": [1],
              "train.optim.gamma": 0.5, "train.optim.lr": 0.001}


def as_overrides(values: dict[str, Any]) -> list[str]:
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def make_config(data: Path, results_dir: Path, action: str = "train", **extra: Any) -> tuple[Any, dict]:
    """(ExperimentConfig, spec dict) through the real spec loader (template + overrides + validation)."""
    spec = load_spec(None, action=action, overrides=as_overrides(spec_overrides(data, results_dir, **extra)))
    return config_from_dict(spec), spec


def write_spec_file(path: Path, data: Path, results_dir: Path, **extra: Any) -> Path:
    spec: dict[str, Any] = {}
    for key, value in spec_overrides(data, results_dir, **extra).items():
        set_dotted(spec, key, value)
    path.write_text(yaml.safe_dump(spec))
    return path
