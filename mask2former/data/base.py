"""The dataset template shared by coco_panoptic, coco and ade: load → transform → build targets.

Each loader turns one record into a `RawSample`: the RGB image plus a segment-id map (int, 0 = void) and the
list of segments in it. One representation for all three formats lets the transforms and the target
builder be written once.

What an item holds, and how `model.mode` shapes it:

- `labels` LongTensor[N] / `masks` BoolTensor[N, H, W]: the training targets. `panoptic`: one per
  non-crowd segment; `instance`: one per non-crowd *thing* segment; `semantic`: one per class present
  (instances of a class merged, as Mask2Former trains semantic segmentation).
- `sem_seg` LongTensor[H, W]: train id per pixel, 255 where void, crowd, or (in `instance` mode) stuff.
- `image` FloatTensor[3, H, W] RGB in [0, 1] (normalisation happens in the collate function),
  `image_id`, `file_name`, `orig_size` (h, w) as stored on disk.

Evaluation items also carry the ground truth every metric is scored against, at the image's ORIGINAL
resolution (`orig_size`), never resized (as Detectron2's evaluators do: predictions are resized back to the
original height and width, see `mask2former.training.validation`). So a searched test-time size changes the
model's input, never the ground truth a trial is judged by:

- `truth_sem_seg` (eval items, else None): LongTensor[H0, W0], train id per pixel, 255 where void, crowd or
  (instance mode) stuff — the mIoU ground truth.
- `panoptic` (eval items in panoptic mode, else None): `{"id_map": LongTensor[H0, W0], "segments": [{"id",
  "category_id" (train id), "iscrowd", "isthing"}]}`, the ground truth PQ needs: every listed segment, crowd
  included (a listed segment with no pixel still counts as a false negative, as in panopticapi).
- `instances` (eval items in instance mode, else None): `{"labels", "masks" [M, H0, W0], "iscrowd"}` for every
  thing segment, crowd included, the ground truth mask AP needs.

`labels`/`masks`/`sem_seg` (the training targets) are at the transformed size: the loss is computed where
the model predicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mask2former.data.label_map import IGNORE_INDEX, Categories
from mask2former.data.transforms import Compose, Sample, bind_categories

MODES = ("panoptic", "instance", "semantic")


@dataclass(frozen=True)
class SegmentInfo:
    """One segment of a `RawSample`: its id in the id map and its category's train id."""

    id: int
    train_id: int
    iscrowd: bool
    isthing: bool


@dataclass(frozen=True)
class RawSample:
    image: np.ndarray  # uint8 [H, W, 3]
    id_map: np.ndarray  # int64 [H, W], 0 = void
    segments: tuple[SegmentInfo, ...]
    image_id: Any
    file_name: str


class SegmentationDataset(Dataset):
    """Base class; subclasses implement `__len__` and `load(index) -> RawSample`."""

    provides_panoptic = False
    provides_instances = False
    name = ""  # `dataset.<split>.name`, for logs

    def __init__(self, *, categories: Categories, mode: str, is_train: bool, transforms: Compose):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.categories = categories
        self.mode = mode
        self.is_train = is_train
        self.transforms = transforms

    def load(self, index: int) -> RawSample:  # pragma: no cover - interface
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        raw = self.load(index)
        # Augmentation randomness comes from torch's generator: seeded by `seed_everything` and distinct in
        # every DataLoader worker (numpy's global state is copied into workers unchanged).
        seed = int(torch.randint(0, 2**62, ()).item()) if self.is_train else index
        rng = np.random.default_rng(seed)
        trained = [s for s in raw.segments if self._trains_on(s)]
        crop_categories = {s.id: s.train_id for s in trained}
        image = torch.from_numpy(np.array(raw.image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)  # HWC→CHW
        sample = bind_categories(self.transforms, crop_categories)(
            Sample(image=image, id_map=torch.from_numpy(raw.id_map.astype(np.int64))), rng)
        item = build_targets(sample.id_map, raw.segments, mode=self.mode)
        item.update(
            image=sample.image,
            image_id=raw.image_id,
            file_name=raw.file_name,
            orig_size=(int(raw.image.shape[0]), int(raw.image.shape[1])),
            truth_sem_seg=None,
            panoptic=None,
            instances=None,
        )
        if not self.is_train:
            original = torch.from_numpy(raw.id_map.astype(np.int64))
            item["truth_sem_seg"] = semantic_ground_truth(original, raw.segments, mode=self.mode)
            if self.mode == "panoptic" and self.provides_panoptic:
                item["panoptic"] = panoptic_ground_truth(original, raw.segments)
            if self.mode == "instance" and self.provides_instances:
                item["instances"] = instance_ground_truth(original, raw.segments)
        return item

    def _trains_on(self, segment: SegmentInfo) -> bool:
        return not segment.iscrowd and (segment.isthing or self.mode != "instance")


def build_targets(id_map: torch.Tensor, segments: tuple[SegmentInfo, ...], *, mode: str) -> dict[str, Any]:
    """`labels`, `masks` and `sem_seg` from a transformed id map (see the module docstring)."""
    h, w = id_map.shape
    present, inverse = torch.unique(id_map, return_inverse=True)
    trained = {s.id: s for s in segments
               if not s.iscrowd and (s.isthing or mode != "instance")}
    lookup = torch.full((len(present),), IGNORE_INDEX, dtype=torch.long)
    kept: list[SegmentInfo] = []
    for position, seg_id in enumerate(present.tolist()):
        segment = trained.get(seg_id)
        if segment is not None:
            lookup[position] = segment.train_id
            kept.append(segment)
    sem_seg = lookup[inverse]  # per-pixel train id via the unique-id table
    if mode == "semantic":
        classes = sorted({s.train_id for s in kept})
        labels = torch.tensor(classes, dtype=torch.long)
        masks = torch.stack([sem_seg == c for c in classes]) if classes else torch.zeros((0, h, w), dtype=torch.bool)
    else:
        labels = torch.tensor([s.train_id for s in kept], dtype=torch.long)
        masks = torch.stack([id_map == s.id for s in kept]) if kept else torch.zeros((0, h, w), dtype=torch.bool)
    return {"labels": labels, "masks": masks, "sem_seg": sem_seg}


def semantic_ground_truth(id_map: torch.Tensor, segments: tuple[SegmentInfo, ...], *, mode: str) -> torch.Tensor:
    """Train id per pixel of an (untransformed) id map, 255 where void, crowd or (instance mode) stuff."""
    present, inverse = torch.unique(id_map, return_inverse=True)
    scored = {s.id: s.train_id for s in segments if not s.iscrowd and (s.isthing or mode != "instance")}
    lookup = torch.tensor([scored.get(seg_id, IGNORE_INDEX) for seg_id in present.tolist()], dtype=torch.long)
    return lookup[inverse]  # per-pixel train id via the unique-id table


def panoptic_ground_truth(id_map: torch.Tensor, segments: tuple[SegmentInfo, ...]) -> dict[str, Any]:
    """PQ ground truth: the id map and EVERY listed segment (panopticapi counts a listed segment without
    pixels as a false negative too)."""
    return {
        "id_map": id_map.clone(),
        "segments": [{"id": s.id, "category_id": s.train_id, "iscrowd": bool(s.iscrowd), "isthing": bool(s.isthing)}
                     for s in segments],
    }


def instance_ground_truth(id_map: torch.Tensor, segments: tuple[SegmentInfo, ...]) -> dict[str, Any]:
    present = set(torch.unique(id_map).tolist())
    things = [s for s in segments if s.isthing and s.id in present]
    h, w = id_map.shape
    return {
        "labels": torch.tensor([s.train_id for s in things], dtype=torch.long),
        "masks": torch.stack([id_map == s.id for s in things]) if things else torch.zeros((0, h, w), dtype=torch.bool),
        "iscrowd": torch.tensor([s.iscrowd for s in things], dtype=torch.bool),
    }
