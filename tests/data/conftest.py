"""Shared fixtures for the data tests: tiny synthetic datasets in every format, written once per session."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
import torch

from mask2former.config import AugmentationConfig, DatasetConfig, DatasetSplitConfig
from mask2former.data.archive import resolve_folder
from mask2former.data.synth import SYNTH_FORMATS, write_synthetic_dataset

SIZE = 64


@pytest.fixture(scope="session", autouse=True)
def extraction_cache(tmp_path_factory):
    """Point the archive cache at a per-session folder (never the user's ~/.cache)."""
    path = tmp_path_factory.mktemp("extract-cache")
    previous = os.environ.get("MASK2FORMER_CACHE")
    os.environ["MASK2FORMER_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("MASK2FORMER_CACHE", None)
    else:
        os.environ["MASK2FORMER_CACHE"] = previous


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny tensors: intra-op threads only add contention on a shared machine (DataLoader workers use 1 too)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def synth(tmp_path_factory, extraction_cache):
    """format → SynthDataset (8 images of 64×64; seed 0 gives crowd regions and void seams in every format)."""
    base = tmp_path_factory.mktemp("synth")
    return {fmt: write_synthetic_dataset(base / fmt, fmt=fmt, num_images=8, seed=0, size=SIZE)
            for fmt in SYNTH_FORMATS}


@pytest.fixture
def dataset_cfg():
    """factory(synth_dataset, contiguous_id=..., **augmentation) -> (DatasetConfig, split config)."""

    def make(written, *, contiguous_id: bool = True, label_map: str | None = None, split=None, **augmentation):
        aug = AugmentationConfig(train_min_size=[SIZE, SIZE], train_max_size=4 * SIZE, train_crop_size=[SIZE, SIZE],
                                 test_min_size=SIZE, test_max_size=4 * SIZE)
        aug = dataclasses.replace(aug, **augmentation)
        split_cfg = split or DatasetSplitConfig(**{**written.dataset_section(), "name": "synthetic"})
        cfg = DatasetConfig(train=split_cfg, val=split_cfg, augmentation=aug, contiguous_id=contiguous_id,
                            label_map=str(written.label_map) if label_map is None else label_map)
        return cfg, split_cfg

    return make


@pytest.fixture
def folder_copy(tmp_path):
    """factory(synth_dataset) -> root of an editable copy with archives replaced by extracted folders."""

    def make(written):
        root = tmp_path / f"{written.format}-copy"
        shutil.copytree(written.root, root)
        fields = {}
        for key, value in written.split_fields.items():
            if key == "type":
                fields[key] = value
                continue
            source = Path(value)
            target = root / source.name
            if source.name.endswith(".tar.gz"):
                target.unlink()
                folder = root / source.name[: -len(".tar.gz")]
                shutil.copytree(resolve_folder(source), folder)
                target = folder
            fields[key] = str(target)
        return root, fields

    return make
