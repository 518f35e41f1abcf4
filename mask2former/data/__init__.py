"""Datasets, transforms, batching and synthetic data for Mask2Former.

Entry points: `build_dataset` / `build_dataloader` (spec sections → data), `load_categories` and
`check_mode` (fail before training), `resolve_folder` (folder or `.tar.gz`), `write_synthetic_dataset`.
"""

from mask2former.data.ade import AdeDataset
from mask2former.data.archive import cache_root, extract_archive, resolve_folder
from mask2former.data.base import MODES, RawSample, SegmentationDataset, SegmentInfo
from mask2former.data.build import (
    DATASET_TYPES,
    build_collate,
    build_dataloader,
    build_dataset,
    check_mode,
    load_categories,
)
from mask2former.data.coco_instance import CocoInstanceDataset
from mask2former.data.coco_panoptic import CocoPanopticDataset
from mask2former.data.collate import Collator
from mask2former.data.label_map import (
    IGNORE_INDEX,
    Categories,
    CategoryInfo,
    categories_from_coco,
    categories_from_records,
    load_label_map,
)
from mask2former.data.synth import SYNTH_FORMATS, SynthDataset, write_synthetic_dataset, write_synthetic_splits
from mask2former.data.transforms import AugmentationSettings, build_transforms

__all__ = [
    "AdeDataset",
    "AugmentationSettings",
    "Categories",
    "CategoryInfo",
    "CocoInstanceDataset",
    "CocoPanopticDataset",
    "Collator",
    "DATASET_TYPES",
    "IGNORE_INDEX",
    "MODES",
    "RawSample",
    "SYNTH_FORMATS",
    "SegmentInfo",
    "SegmentationDataset",
    "SynthDataset",
    "build_collate",
    "build_dataloader",
    "build_dataset",
    "build_transforms",
    "cache_root",
    "categories_from_coco",
    "categories_from_records",
    "check_mode",
    "extract_archive",
    "load_categories",
    "load_label_map",
    "resolve_folder",
    "write_synthetic_dataset",
    "write_synthetic_splits",
]
