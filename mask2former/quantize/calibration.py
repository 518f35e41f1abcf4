"""Calibration images for static PTQ: `dataset.quant_calibration_dataset.images_dir` at one fixed size.

The images go through the inference pipeline (`mask2former.actions.inference.ImageFolder`: read, resize to
`dataset.test.target_size`, the data package's normalisation/collate), so calibration sees exactly the
tensors the deployed graph will see. The size is fixed because the exported graph has a fixed H x W:
`dataset.test.target_size` must be empty (the graph's size is used) or equal to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from skillkit.errors import DataError, SpecError

if TYPE_CHECKING:
    from mask2former.config import ExperimentConfig


def calibration_size(cfg: ExperimentConfig, graph_size: tuple[int, int]) -> tuple[int, int]:
    """dataset.test.target_size checked against the graph's (H, W)."""
    target = list(cfg.dataset.test.target_size or [])
    if not target:
        return graph_size
    size = (int(target[0]), int(target[-1]))
    if size != tuple(graph_size):
        raise SpecError(f"dataset.test.target_size={target} but the ONNX graph takes {graph_size[0]}x{graph_size[1]} "
                        "images; calibration must use the graph's size: set dataset.test.target_size to "
                        f"[{graph_size[0]}, {graph_size[1]}] (or leave it empty).")
    return size


def calibration_batches(cfg: ExperimentConfig, size: tuple[int, int], *, batch_size: int = 1) -> Iterator[torch.Tensor]:
    """Yield float32 [B, 3, H, W] model inputs for every image of the calibration folder."""
    from torch.utils.data import DataLoader

    from mask2former.actions.inference import ImageFolder, list_images
    from mask2former.data.archive import resolve_folder
    from mask2former.data.build import build_collate
    from mask2former.data.transforms import Compose, FixedResize

    folder = cfg.dataset.quant_calibration_dataset.images_dir
    if not folder:
        raise SpecError("dataset.quant_calibration_dataset.images_dir is empty: static PTQ needs a folder (or "
                        ".tar.gz) of representative images to calibrate activation ranges.")
    root = resolve_folder(folder)
    files = list_images(root)
    dataset = ImageFolder(root, files, Compose([FixedResize(size)]))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=build_collate(cfg.dataset))
    for batch in loader:
        images = batch["images"][..., : size[0], : size[1]]  # drop collate padding to a multiple of 32
        if tuple(images.shape[-2:]) != tuple(size):
            raise DataError(f"calibration batch has size {tuple(images.shape[-2:])}, expected {size}")
        yield images


def count_calibration_images(cfg: ExperimentConfig) -> int:
    from mask2former.actions.inference import list_images
    from mask2former.data.archive import resolve_folder

    return len(list_images(resolve_folder(cfg.dataset.quant_calibration_dataset.images_dir)))
