"""File readers shared by the dataset loaders, each turning a bad file into a DataError naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from skillkit.errors import DataError


def read_image(path: Path, *, record: str) -> np.ndarray:
    """RGB image as uint8 [H, W, 3], EXIF orientation applied (as TAO does)."""
    image = _open(path, record=record, what="image")
    image = ImageOps.exif_transpose(image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_label_png(path: Path, *, record: str) -> np.ndarray:
    """Single-channel label PNG as int64 [H, W] (palette PNGs give their indices, not colours)."""
    image = _open(path, record=record, what="segmentation mask")
    if image.mode in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1"):
        array = np.asarray(image)
    else:
        raise DataError(f"segmentation mask {path} ({record}) has mode {image.mode}; a single-channel PNG "
                        "whose pixel values are category ids is required")
    return array.astype(np.int64)


def read_panoptic_png(path: Path, *, record: str) -> np.ndarray:
    """COCO panoptic PNG decoded to segment ids, int64 [H, W]: id = R + 256·G + 256²·B."""
    image = _open(path, record=record, what="panoptic mask")
    rgb = np.asarray(image.convert("RGB"), dtype=np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def id_to_rgb(id_map: np.ndarray) -> np.ndarray:
    """Inverse of the panoptic decoding: int [H, W] → uint8 [H, W, 3]."""
    id_map = np.asarray(id_map, dtype=np.int64)
    rgb = np.stack([id_map % 256, (id_map // 256) % 256, (id_map // 65536) % 256], axis=-1)
    return rgb.astype(np.uint8)


def check_same_size(image: np.ndarray, mask: np.ndarray, *, image_path: Path, mask_path: Path,
                    record: str) -> None:
    if image.shape[:2] != mask.shape[:2]:
        raise DataError(f"image {image_path} is {image.shape[0]}x{image.shape[1]} (HxW) but its mask "
                        f"{mask_path} is {mask.shape[0]}x{mask.shape[1]} ({record}); they must match")


def read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """Non-empty lines of a JSON Lines file as (1-based line number, value)."""
    if not path.is_file():
        raise DataError(f"annotation file {path} does not exist (or is not a file)")
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as error:
                raise DataError(f"annotation file {path} line {number} is not valid JSON: {error.msg}") from None
    return rows


def _open(path: Path, *, record: str, what: str) -> Image.Image:
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist ({record})")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{what} {path} cannot be decoded ({record}): {error}") from None
    return image
