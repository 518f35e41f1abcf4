"""Datasets, transforms, batching and synthetic data for Mask2Former.

Entry points: `build_dataset` / `build_dataloader` (spec sections → data), `load_categories` and
`check_mode` (fail before training), `resolve_folder` (folder or `.tar.gz`), `write_synthetic_dataset`.

Names are imported on first use (PEP 562), so a submodule that needs no torch (`synth`, `label_map`, the
`mask2former dataset synth` action) starts without loading it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "AdeDataset": "ade",
    "cache_root": "archive", "extract_archive": "archive", "resolve_folder": "archive",
    "MODES": "base", "RawSample": "base", "SegmentationDataset": "base", "SegmentInfo": "base",
    "DATASET_TYPES": "build", "build_collate": "build", "build_dataloader": "build", "build_dataset": "build",
    "check_mode": "build", "load_categories": "build",
    "CocoInstanceDataset": "coco_instance",
    "CocoPanopticDataset": "coco_panoptic",
    "Collator": "collate",
    "IGNORE_INDEX": "label_map", "Categories": "label_map", "CategoryInfo": "label_map",
    "categories_from_coco": "label_map", "categories_from_records": "label_map", "load_label_map": "label_map",
    "SYNTH_FORMATS": "synth", "SynthDataset": "synth", "write_synthetic_dataset": "synth",
    "write_synthetic_splits": "synth",
    "AugmentationSettings": "transforms", "build_transforms": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
