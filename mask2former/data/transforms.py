"""Augmentation and resizing for an image and its segment-id map (torch + numpy only, no torchvision).

Every transform takes a `Sample` (image float32 [3, H, W] in [0, 1] plus an int64 [H, W] segment-id map,
0 = void) and a `numpy.random.Generator`, and returns a new `Sample`. Geometric transforms move image and id
map together: the image is resampled bilinearly (antialiased when shrinking) and the id map by nearest
neighbour on the same half-pixel grid, so ids never blend.

Pipelines (`build_transforms`), following TAO's Mask2Former loader:

- train: [fixed resize to `target_size`] → horizontal flip → colour jitter → resize shortest edge to a size
  drawn from `train_min_size` (longest edge capped at `train_max_size`) → random crop to `train_crop_size`
  with a per-category area cap.
- eval: resize to `target_size` exactly when it is set (so batches share one size); otherwise resize the
  shortest edge to `test_min_size` with the longest edge capped at `test_max_size`.

As in TAO, a `train_min_size` with a single value s is expanded to the multi-scale choices s/2, s/2+64, …, 2s
(an empty one uses the smaller crop side as s); give two or more values to choose the scales exactly.
Padding to a multiple of 32 happens per batch (`pad_to_multiple`, used by the collate function).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from skillkit.errors import SpecError

SIZE_DIVISIBILITY = 32


@dataclass(frozen=True)
class Sample:
    """An image and its segment-id map, same height and width."""

    image: torch.Tensor  # float32 [3, H, W], RGB in [0, 1]
    id_map: torch.Tensor  # int64 [H, W], 0 = void

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[-2]), int(self.image.shape[-1])


# ----------------------------------------------------------------------------------------------- resizing
def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of float [3, H, W] to `size` (h, w), antialiased when shrinking."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    return out.clamp_(0.0, 1.0)


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of an integer map [..., H, W] on the half-pixel grid (exact for any id)."""
    in_h, in_w = labels.shape[-2:]
    out_h, out_w = size
    if (in_h, in_w) == (out_h, out_w):
        return labels
    rows = ((torch.arange(out_h, dtype=torch.float64) + 0.5) * in_h / out_h).floor().long().clamp_(0, in_h - 1)
    cols = ((torch.arange(out_w, dtype=torch.float64) + 0.5) * in_w / out_w).floor().long().clamp_(0, in_w - 1)
    return labels[..., rows[:, None], cols[None, :]]


def shortest_edge_size(h: int, w: int, short_edge: int, max_size: int) -> tuple[int, int]:
    """Output (h, w) with the shorter side scaled to `short_edge`, the longer capped at `max_size`."""
    scale = short_edge / min(h, w)
    new_h, new_w = h * scale, w * scale
    if max(new_h, new_w) > max_size:
        shrink = max_size / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    return max(1, int(new_h + 0.5)), max(1, int(new_w + 0.5))


def pad_to_multiple(tensor: torch.Tensor, size: tuple[int, int], value: float | int) -> torch.Tensor:
    """Pad [..., H, W] at the bottom/right to `size` (h, w) with `value`."""
    pad_h, pad_w = size[0] - tensor.shape[-2], size[1] - tensor.shape[-1]
    if pad_h < 0 or pad_w < 0:
        raise ValueError(f"cannot pad {tuple(tensor.shape[-2:])} to smaller size {size}")
    if pad_h == 0 and pad_w == 0:
        return tensor
    out = tensor.new_full(tensor.shape[:-2] + tuple(size), value)
    out[..., : tensor.shape[-2], : tensor.shape[-1]] = tensor
    return out


def round_up(value: int, divisor: int = SIZE_DIVISIBILITY) -> int:
    return ((value + divisor - 1) // divisor) * divisor


# -------------------------------------------------------------------------------------------- transforms
class Transform:
    """Base: `__call__(sample, rng) -> Sample`; subclasses hold only plain settings."""

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = tuple(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample


class FixedResize(Transform):
    """Resize to exactly `size` (h, w): TAO's `target_size`."""

    def __init__(self, size: tuple[int, int]):
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return Sample(resize_image(sample.image, self.size), resize_labels(sample.id_map, self.size))


class ResizeShortestEdge(Transform):
    """Scale the shorter side to a size drawn uniformly from `short_edges`, the longer capped at `max_size`."""

    def __init__(self, short_edges: Sequence[int], max_size: int):
        self.short_edges = tuple(int(s) for s in short_edges)
        self.max_size = int(max_size)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        short = self.short_edges[int(rng.integers(len(self.short_edges)))] if len(self.short_edges) > 1 \
            else self.short_edges[0]
        size = shortest_edge_size(*sample.size, short, self.max_size)
        return Sample(resize_image(sample.image, size), resize_labels(sample.id_map, size))


class RandomHorizontalFlip(Transform):
    def __init__(self, prob: float = 0.5):
        self.prob = float(prob)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() < self.prob:
            return Sample(sample.image.flip(-1), sample.id_map.flip(-1))
        return sample


class ColorJitter(Transform):
    """SSD-style photometric jitter (brightness shift, contrast and saturation scaling), each w.p. `prob`.

    Contrast and saturation are applied in a random order, as in the SSD recipe TAO uses; hue is left alone
    because class colour is part of the learning signal in the synthetic data and hue shifts rarely help.
    """

    def __init__(self, *, brightness_delta: float = 32 / 255, contrast: tuple[float, float] = (0.5, 1.5),
                 saturation: tuple[float, float] = (0.5, 1.5), prob: float = 0.5):
        self.brightness_delta = float(brightness_delta)
        self.contrast = (float(contrast[0]), float(contrast[1]))
        self.saturation = (float(saturation[0]), float(saturation[1]))
        self.prob = float(prob)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        image = sample.image
        if rng.random() < self.prob:
            image = image + float(rng.uniform(-self.brightness_delta, self.brightness_delta))
        steps = [self._contrast, self._saturation]
        if rng.random() < 0.5:
            steps.reverse()
        for step in steps:
            if rng.random() < self.prob:
                image = step(image.clamp(0.0, 1.0), rng)
        return replace(sample, image=image.clamp(0.0, 1.0))

    def _contrast(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        alpha = float(rng.uniform(*self.contrast))
        mean = _gray(image).mean()
        return (image - mean) * alpha + mean

    def _saturation(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        alpha = float(rng.uniform(*self.saturation))
        gray = _gray(image)[None]
        return (image - gray) * alpha + gray


def _gray(image: torch.Tensor) -> torch.Tensor:
    """Luma [H, W] of an RGB [3, H, W] image (ITU-R 601 weights)."""
    return 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]


class RandomCropCategoryArea(Transform):
    """Random crop of `crop_size` (h, w) (clipped to the image) where no single category covers more than
    `single_category_max_area` of the labelled crop area (Mask2Former's semantic crop; mmseg's
    `cat_max_ratio`). Up to `max_tries` windows are drawn; the last one is kept if none qualifies.
    `1.0` disables the cap. Pixels whose id is not in `categories` (void, crowd) do not count.
    """

    def __init__(self, crop_size: tuple[int, int], *, categories: Mapping[int, int] | None = None,
                 single_category_max_area: float = 0.75, max_tries: int = 10):
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.categories = dict(categories or {})
        self.single_category_max_area = float(single_category_max_area)
        self.max_tries = int(max_tries)

    def with_categories(self, categories: Mapping[int, int]) -> RandomCropCategoryArea:
        """A copy that knows this sample's segment id → category map (set per sample by the dataset)."""
        return RandomCropCategoryArea(self.crop_size, categories=categories,
                                      single_category_max_area=self.single_category_max_area,
                                      max_tries=self.max_tries)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = sample.size
        crop_h, crop_w = min(self.crop_size[0], h), min(self.crop_size[1], w)
        tries = 1 if self.single_category_max_area >= 1.0 else self.max_tries
        for _ in range(tries):
            top = int(rng.integers(h - crop_h + 1))
            left = int(rng.integers(w - crop_w + 1))
            window = sample.id_map[top: top + crop_h, left: left + crop_w]
            if tries == 1 or self._acceptable(window):
                break
        return Sample(sample.image[:, top: top + crop_h, left: left + crop_w].contiguous(), window.contiguous())

    def _acceptable(self, window: torch.Tensor) -> bool:
        ids, counts = torch.unique(window, return_counts=True)
        per_category: dict[int, int] = {}
        for seg_id, count in zip(ids.tolist(), counts.tolist()):
            category = self.categories.get(seg_id)
            if category is not None:
                per_category[category] = per_category.get(category, 0) + count
        if len(per_category) < 2:
            return False
        return max(per_category.values()) < self.single_category_max_area * sum(per_category.values())


# ---------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class AugmentationSettings:
    """`dataset.augmentation` plus the split's `target_size`, validated."""

    train_min_size: tuple[int, ...]
    train_max_size: int
    train_crop_size: tuple[int, int]
    test_min_size: int
    test_max_size: int
    target_size: tuple[int, int] | None = None

    @classmethod
    def from_config(cls, augmentation, target_size: Sequence[int] = (), *,
                    target_key: str = "dataset.train.target_size") -> AugmentationSettings:
        key = "dataset.augmentation"
        min_sizes = _int_list(_get(augmentation, "train_min_size"), f"{key}.train_min_size")
        crop = _int_list(_get(augmentation, "train_crop_size"), f"{key}.train_crop_size")
        if len(crop) != 2:
            raise SpecError(f"{key}.train_crop_size={list(crop)} must be [height, width] (two integers >= 1)")
        target = _int_list(target_size or [], target_key)
        if len(target) > 2:
            raise SpecError(f"{target_key}={list(target)} must be [], [size] or [height, width]")
        return cls(
            train_min_size=tuple(min_sizes),
            train_max_size=_positive(_get(augmentation, "train_max_size"), f"{key}.train_max_size"),
            train_crop_size=(crop[0], crop[1]),
            test_min_size=_positive(_get(augmentation, "test_min_size"), f"{key}.test_min_size"),
            test_max_size=_positive(_get(augmentation, "test_max_size"), f"{key}.test_max_size"),
            target_size=None if not target else (target[0], target[-1]),
        )

    def train_scales(self) -> tuple[int, ...]:
        """Shortest-edge choices, with TAO's expansion of a single (or empty) `train_min_size`."""
        if len(self.train_min_size) > 1:
            return self.train_min_size
        base = self.train_min_size[0] if self.train_min_size else min(self.train_crop_size)
        return tuple(range(max(base // 2, 1), base * 2 + 64, 64))


def build_transforms(settings: AugmentationSettings, *, is_train: bool, flip_prob: float = 0.5,
                     color_jitter: bool = True, single_category_max_area: float = 0.75) -> Compose:
    """The train or eval pipeline described in the module docstring."""
    steps: list[Transform] = []
    if settings.target_size is not None:
        steps.append(FixedResize(settings.target_size))
    if not is_train:
        if settings.target_size is None:
            steps.append(ResizeShortestEdge([settings.test_min_size], settings.test_max_size))
        return Compose(steps)
    steps.append(RandomHorizontalFlip(flip_prob))
    if color_jitter:
        steps.append(ColorJitter())
    steps.append(ResizeShortestEdge(settings.train_scales(), settings.train_max_size))
    steps.append(RandomCropCategoryArea(settings.train_crop_size,
                                        single_category_max_area=single_category_max_area))
    return Compose(steps)


def bind_categories(pipeline: Compose, categories: Mapping[int, int]) -> Compose:
    """The pipeline with its crop told which segment ids belong to which category (others are ignored)."""
    return Compose([t.with_categories(categories) if isinstance(t, RandomCropCategoryArea) else t
                    for t in pipeline.transforms])


def _get(obj, name: str):
    return obj[name] if isinstance(obj, Mapping) else getattr(obj, name)


def _int_list(values, key: str) -> list[int]:
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    try:
        items = list(values)
    except TypeError:
        raise SpecError(f"{key}={values!r} must be a list of integers >= 1") from None
    return [_positive(v, key) for v in items]


def _positive(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        if isinstance(value, float) and value.is_integer() and value >= 1:
            return int(value)
        raise SpecError(f"{key} has value {value!r}; integers >= 1 are required")
    return int(value)
