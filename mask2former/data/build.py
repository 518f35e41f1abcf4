"""Composition root for data: spec sections (`cfg.dataset`, `cfg.dataset.train|val|test`) → datasets,
collate function and data loaders. Nothing below this module reads the config.

`split_cfg` is one split's `DatasetSplitConfig`, `dataset_cfg` the whole `DatasetConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from mask2former.config import DatasetConfig, DatasetSplitConfig
from mask2former.data.ade import AdeDataset
from mask2former.data.archive import resolve_folder
from mask2former.data.base import MODES, SegmentationDataset
from mask2former.data.coco_instance import CocoInstanceDataset
from mask2former.data.coco_panoptic import CocoPanopticDataset
from mask2former.data.collate import Collator
from mask2former.data.label_map import Categories, categories_from_coco, load_json_file, load_label_map
from mask2former.data.transforms import AugmentationSettings, build_transforms
from mask2former.data.worker_init import ignore_sigterm_in_worker
from skillkit.errors import DataError, SpecError

DATASET_TYPES = ("coco", "coco_panoptic", "ade")
REQUIRED_FIELDS = {
    "coco_panoptic": ("panoptic_json", "img_dir", "panoptic_dir"),
    "coco": ("instance_json", "img_dir"),
    "ade": ("annot_file",),
}
MODE_DATASET_TYPES = {
    "panoptic": ("coco_panoptic",),
    "instance": ("coco", "coco_panoptic"),
    "semantic": DATASET_TYPES,
}


def evaluation_split(dataset_cfg: DatasetConfig) -> str:
    """The split an evaluation scores: "test" when dataset.test names every annotation file its type needs,
    else "val"."""
    test = dataset_cfg.test
    needed = REQUIRED_FIELDS.get(test.type, ())
    return "test" if needed and all(getattr(test, name, "") for name in needed) else "val"


def _split_name(split: str | None, is_train: bool) -> str:
    return split or ("train" if is_train else "val")


def _dataset_type(split_cfg: DatasetSplitConfig, split: str) -> str:
    kind = split_cfg.type
    if kind not in DATASET_TYPES:
        raise SpecError(f"dataset.{split}.type={kind!r} is not supported; use one of {', '.join(DATASET_TYPES)}")
    return kind


def check_mode(mode: str, split_cfg: DatasetSplitConfig, categories: Categories | None = None, *,
               split: str = "train") -> str:
    """Check that `model.mode` fits the split's dataset type, fields and categories; returns the mode.

    panoptic needs coco_panoptic; instance needs coco or coco_panoptic and at least one thing category;
    semantic works with every type.
    """
    mode_name = str(mode).lower()
    if mode_name not in MODES:
        raise SpecError(f"model.mode={mode!r} is not supported; use one of {', '.join(MODES)}")
    kind = _dataset_type(split_cfg, split)
    if kind not in MODE_DATASET_TYPES[mode_name]:
        hint = {"ade": "ade data has only semantic labels: use model.mode=semantic",
                "coco": "coco instance data has no stuff/panoptic labels: use model.mode=instance or semantic"}
        raise SpecError(f"model.mode={mode_name} does not fit dataset.{split}.type={kind}: {mode_name} needs "
                        f"{' or '.join(MODE_DATASET_TYPES[mode_name])} annotations; {hint.get(kind, '')}".rstrip())
    for name in REQUIRED_FIELDS[kind]:
        if not getattr(split_cfg, name):
            raise SpecError(f"dataset.{split}.{name} is empty; dataset type {kind} needs "
                            f"{', '.join(f'dataset.{split}.{n}' for n in REQUIRED_FIELDS[kind])}")
    if categories is not None and mode_name == "instance" and not categories.thing_train_ids:
        raise DataError(f"model.mode=instance needs thing categories, but every category in "
                        f"{categories.source} has isthing=0")
    return mode_name


def load_categories(dataset_cfg: DatasetConfig, split_cfg: DatasetSplitConfig | None = None, *,
                    split: str = "train") -> Categories:
    """`dataset.label_map` (with `dataset.contiguous_id`); without one, the categories of a coco /
    coco_panoptic annotation file are used. ade data needs a label map."""
    contiguous = bool(dataset_cfg.contiguous_id)
    label_map = dataset_cfg.label_map
    if label_map:
        return load_label_map(label_map, contiguous_id=contiguous)
    kind = _dataset_type(split_cfg, split) if split_cfg is not None else None
    field = {"coco_panoptic": "panoptic_json", "coco": "instance_json"}.get(kind or "")
    if field is None or not getattr(split_cfg, field):
        raise SpecError("dataset.label_map is empty; give a TAO label map JSON (a list of {id, name, color, "
                        "isthing}); only coco and coco_panoptic data can fall back to their JSON's categories")
    path = getattr(split_cfg, field)
    data = load_json_file(path, what="annotation file")
    if not isinstance(data, Mapping) or not isinstance(data.get("categories"), list):
        raise DataError(f"annotation file {path} has no 'categories' list and dataset.label_map is empty")
    return categories_from_coco(data["categories"], contiguous_id=contiguous, source=str(path))


def build_dataset(split_cfg: DatasetSplitConfig, *, dataset_cfg: DatasetConfig, mode: str, is_train: bool,
                  categories: Categories | None = None, num_classes: int | None = None,
                  split: str | None = None) -> SegmentationDataset:
    """A dataset for one split (`cfg.dataset.train|val|test`).

    `categories` defaults to `load_categories(dataset_cfg, split_cfg)`; pass the train split's to keep one
    class mapping across splits. `num_classes` (model.sem_seg_head.num_classes), when given, is checked
    against the label map. Raises SpecError / DataError before any training starts.
    """
    split = _split_name(split, is_train)
    check_mode(mode, split_cfg, split=split)
    _check_loader_fields(split_cfg, split)
    categories = categories or load_categories(dataset_cfg, split_cfg, split=split)
    mode = check_mode(mode, split_cfg, categories, split=split)
    if num_classes is not None:
        categories.check_num_classes(int(num_classes))
    settings = AugmentationSettings.from_config(dataset_cfg.augmentation,
                                                split_cfg.target_size or (),
                                                target_key=f"dataset.{split}.target_size")
    transforms = build_transforms(settings, is_train=is_train)
    kind = split_cfg.type
    dataset = _construct(kind, split_cfg, dict(categories=categories, mode=mode, is_train=is_train,
                                               transforms=transforms))
    dataset.name = split_cfg.name or f"{kind}/{split}"  # for logs and progress bars
    return dataset


def _construct(kind: str, split_cfg: DatasetSplitConfig, common: dict) -> SegmentationDataset:
    if kind == "coco_panoptic":
        return CocoPanopticDataset(panoptic_json=split_cfg.panoptic_json,
                                   img_dir=resolve_folder(split_cfg.img_dir),
                                   panoptic_dir=resolve_folder(split_cfg.panoptic_dir), **common)
    if kind == "coco":
        return CocoInstanceDataset(instance_json=split_cfg.instance_json,
                                   img_dir=resolve_folder(split_cfg.img_dir), **common)
    root = resolve_folder(split_cfg.root_dir) if split_cfg.root_dir else Path(".")
    return AdeDataset(annot_file=_resolve_annot_file(split_cfg.annot_file, root), root_dir=root, **common)


def _check_loader_fields(split_cfg: DatasetSplitConfig, split: str) -> None:
    batch_size, workers = split_cfg.batch_size, split_cfg.num_workers
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SpecError(f"dataset.{split}.batch_size={batch_size!r} must be an integer >= 1")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise SpecError(f"dataset.{split}.num_workers={workers!r} must be an integer >= 0")


def _resolve_annot_file(annot_file: str, root: Path) -> Path:
    """A relative `annot_file` is looked up under `root_dir` first (so it may live inside a root_dir
    archive), then as given (relative to the working directory, as TAO reads it)."""
    path = Path(annot_file).expanduser()
    if not path.is_absolute() and (root / path).is_file():
        return root / path
    return path


def build_collate(dataset_cfg: DatasetConfig) -> Collator:
    return Collator(pixel_mean=list(dataset_cfg.pixel_mean))


def build_dataloader(split_cfg: DatasetSplitConfig, *, dataset_cfg: DatasetConfig, mode: str, is_train: bool,
                     categories: Categories | None = None, num_classes: int | None = None,
                     split: str | None = None, generator: torch.Generator | None = None) -> DataLoader:
    """`build_dataset` wrapped in a DataLoader with the split's batch_size / num_workers and the
    dataset's pin_memory; training shuffles and drops the last partial batch, evaluation keeps every image."""
    dataset = build_dataset(split_cfg, dataset_cfg=dataset_cfg, mode=mode, is_train=is_train,
                            categories=categories, num_classes=num_classes, split=split)
    workers = int(split_cfg.num_workers or 0)
    return DataLoader(
        dataset,
        batch_size=int(split_cfg.batch_size),
        shuffle=is_train,
        drop_last=is_train and len(dataset) >= int(split_cfg.batch_size),
        num_workers=workers,
        pin_memory=bool(dataset_cfg.pin_memory) and torch.cuda.is_available(),
        collate_fn=build_collate(dataset_cfg),
        generator=generator,
        persistent_workers=workers > 0,
        worker_init_fn=ignore_sigterm_in_worker,
    )
