"""Transforms: every augmentation field changes what comes out, and labels never blend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mask2former.config import AugmentationConfig
from mask2former.data.collate import Collator
from mask2former.data.transforms import (
    AugmentationSettings,
    ColorJitter,
    RandomCropCategoryArea,
    RandomHorizontalFlip,
    Sample,
    bind_categories,
    build_transforms,
    resize_labels,
    shortest_edge_size,
)
from skillkit.errors import SpecError


def _sample(h: int = 60, w: int = 90) -> Sample:
    gen = torch.Generator().manual_seed(0)
    image = torch.rand((3, h, w), generator=gen)
    id_map = (torch.arange(h)[:, None] // 10 * 100 + torch.arange(w)[None, :] // 15).long()  # blocky ids
    return Sample(image=image, id_map=id_map)


def _settings(**kwargs) -> AugmentationSettings:
    aug = dict(train_min_size=[60], train_max_size=1000, train_crop_size=[1000, 1000], test_min_size=60,
               test_max_size=1000)
    target = kwargs.pop("target_size", ())
    aug.update(kwargs)
    return AugmentationSettings.from_config(AugmentationConfig(**aug), target)


def _sizes(settings: AugmentationSettings, *, is_train: bool, n: int = 30, sample: Sample | None = None):
    pipeline = build_transforms(settings, is_train=is_train)
    sample = sample or _sample()
    return {pipeline(sample, np.random.default_rng(i)).size for i in range(n)}


def test_train_min_size_choices_drive_the_scale():
    assert _sizes(_settings(train_min_size=[30, 45]), is_train=True) == {(30, 45), (45, 68)}
    assert _sizes(_settings(train_min_size=[90, 120]), is_train=True) == {(90, 135), (120, 180)}


def test_single_train_min_size_expands_like_tao():
    assert _settings(train_min_size=[128]).train_scales() == (64, 128, 192, 256)
    assert _settings(train_min_size=[640]).train_scales() == tuple(range(320, 1281, 64))
    sizes = _sizes(_settings(train_min_size=[64]), is_train=True, n=15, sample=_sample(30, 45))
    assert {s[0] for s in sizes} == {32, 96, 160}  # 64 expands to 32, 96, 160


def test_train_max_size_caps_the_longest_edge():
    sizes = _sizes(_settings(train_min_size=[60, 90], train_max_size=100), is_train=True)
    assert sizes == {(60, 90), (67, 100)}


def test_train_crop_size_bounds_the_output():
    sizes = _sizes(_settings(train_min_size=[60, 90], train_crop_size=[40, 50]), is_train=True)
    assert sizes == {(40, 50)}
    sizes = _sizes(_settings(train_min_size=[30, 31], train_crop_size=[40, 50]), is_train=True)
    assert all(h <= 40 and w <= 50 for h, w in sizes) and (30, 45) in sizes  # smaller images are not enlarged


def test_test_min_and_max_size():
    assert _sizes(_settings(test_min_size=120), is_train=False) == {(120, 180)}
    assert _sizes(_settings(test_min_size=120, test_max_size=150), is_train=False) == {(100, 150)}


def test_target_size_forces_a_fixed_size_height_first():
    assert _sizes(_settings(target_size=[48, 80]), is_train=False) == {(48, 80)}
    assert _sizes(_settings(target_size=[40]), is_train=False) == {(40, 40)}
    # training: the fixed resize happens first, then multi-scale + crop (as TAO does)
    sizes = _sizes(_settings(target_size=[100, 50], train_min_size=[50, 51]), is_train=True, n=10)
    assert {s[1] for s in sizes} <= {50, 51} and all(s[0] >= 100 for s in sizes)


def test_settings_validation():
    with pytest.raises(SpecError, match=r"dataset.augmentation.train_crop_size=\[64\] must be \[height, width\]"):
        _settings(train_crop_size=[64])
    with pytest.raises(SpecError, match=r"dataset.train.target_size=\[1, 2, 3\] must be \[\], \[size\] or"):
        _settings(target_size=[1, 2, 3])
    with pytest.raises(SpecError, match=r"dataset.augmentation.train_min_size has value 0"):
        _settings(train_min_size=[0])
    with pytest.raises(SpecError, match=r"dataset.augmentation.test_max_size has value -5"):
        _settings(test_max_size=-5)


def test_flip_moves_image_and_ids_together():
    sample = _sample()
    flipped = RandomHorizontalFlip(1.0)(sample, np.random.default_rng(0))
    assert torch.equal(flipped.image, sample.image.flip(-1)) and torch.equal(flipped.id_map, sample.id_map.flip(-1))
    assert RandomHorizontalFlip(0.0)(sample, np.random.default_rng(0)) is sample
    flips = [torch.equal(RandomHorizontalFlip(0.5)(sample, np.random.default_rng(i)).id_map, sample.id_map)
             for i in range(40)]
    assert 5 < sum(flips) < 35


def test_color_jitter_changes_pixels_not_labels():
    sample = _sample()
    outputs = [ColorJitter(prob=1.0)(sample, np.random.default_rng(i)) for i in range(5)]
    assert all(torch.equal(o.id_map, sample.id_map) for o in outputs)
    assert all(not torch.allclose(o.image, sample.image) for o in outputs)
    assert all(float(o.image.min()) >= 0.0 and float(o.image.max()) <= 1.0 for o in outputs)
    assert torch.equal(ColorJitter(prob=0.0)(sample, np.random.default_rng(0)).image, sample.image)


def test_label_resize_never_blends_ids():
    labels = torch.tensor([[1, 2], [3, 70000]])
    up = resize_labels(labels, (4, 4))
    assert up.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 70000, 70000], [3, 3, 70000, 70000]]
    ids = _sample().id_map
    down = resize_labels(ids, (17, 23))
    assert set(down.unique().tolist()) <= set(ids.unique().tolist())
    assert shortest_edge_size(480, 640, 800, 1333) == (800, 1067)
    assert shortest_edge_size(480, 640, 800, 1000) == (750, 1000)


def test_crop_category_area_cap():
    h = w = 100
    id_map = torch.full((h, w), 1, dtype=torch.long)
    id_map[:40, :40] = 2  # a 40×40 corner of category B on a field of category A
    id_map[60:, 60:] = 0  # void: never counted
    sample = Sample(image=torch.rand(3, h, w), id_map=id_map)
    categories = {1: 10, 2: 20}

    def mixed_fraction(cap: float) -> float:
        crop = RandomCropCategoryArea((50, 50), single_category_max_area=cap).with_categories(categories)
        good = 0
        for seed in range(60):
            window = crop(sample, np.random.default_rng(seed)).id_map
            a, b = int((window == 1).sum()), int((window == 2).sum())
            good += max(a, b) < 0.75 * (a + b)
        return good / 60

    capped, uncapped = mixed_fraction(0.75), mixed_fraction(1.0)
    assert capped > 0.9 and uncapped < 0.5  # the cap makes crops contain a mix of categories
    assert bind_categories(build_transforms(_settings(), is_train=True), categories).transforms[-1].categories == categories


def test_collate_pads_to_32_with_the_pixel_mean():
    items = []
    for h, w in [(40, 50), (70, 33)]:
        sem = torch.randint(0, 3, (h, w))
        items.append({"image": torch.full((3, h, w), 0.5), "labels": torch.tensor([0, 1]),
                      "masks": torch.ones((2, h, w), dtype=torch.bool), "sem_seg": sem, "image_id": h,
                      "file_name": f"{h}.jpg", "orig_size": (h * 2, w * 2), "panoptic": None, "instances": None})
    mean = torch.tensor([0.5, 0.25, 0.0]).view(3, 1, 1)
    batch = Collator(pixel_mean=[0.5, 0.25, 0.0])(items)
    assert batch["images"].shape == (2, 3, 96, 64)
    assert (batch["images"][0, :, :40, :50] == 0.5).all()  # not normalised: the model does that
    assert (batch["images"][0, :, 40:, :] == mean).all() and (batch["images"][0, :, :, 50:] == mean).all()
    assert batch["sem_seg"].shape == (2, 96, 64) and (batch["sem_seg"][1, 70:] == 255).all()
    assert torch.equal(batch["sem_seg"][1, :70, :33], items[1]["sem_seg"])
    masks = batch["targets"][0]["masks"]
    assert masks.shape == (2, 96, 64) and masks[:, :40, :50].all() and not masks[:, 40:].any()
    assert [m["image_size"] for m in batch["metas"]] == [(40, 50), (70, 33)]
    assert batch["metas"][1]["orig_size"] == (140, 66) and batch["metas"][0]["file_name"] == "40.jpg"
