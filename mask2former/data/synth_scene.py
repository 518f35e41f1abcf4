"""Synthetic scenes: stuff bands (sky / background / ground) with non-overlapping shapes on top.

Classes are learnable from local evidence: each class has its own colour and (for things) its own shape,
so a tiny model separates them within a few CPU minutes. Shapes are polygons rasterised with pycocotools,
so the COCO polygons written to disk decode to exactly the pixels painted in the image.

Some scenes carry a void line (unlabelled pixels) between sky and background, and some a crowd region
(a cluster of small shapes of one class annotated as one `iscrowd` segment), so loaders and PQ see both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

# Raw category ids deliberately skip 4, so contiguous_id=true and false give different class indices.
CATEGORIES: tuple[dict, ...] = (
    {"id": 1, "name": "circle", "color": [220, 40, 40], "isthing": 1},
    {"id": 2, "name": "rectangle", "color": [40, 180, 60], "isthing": 1},
    {"id": 3, "name": "triangle", "color": [50, 80, 220], "isthing": 1},
    {"id": 5, "name": "sky", "color": [150, 210, 245], "isthing": 0},
    {"id": 6, "name": "ground", "color": [140, 100, 50], "isthing": 0},
    {"id": 7, "name": "background", "color": [120, 120, 120], "isthing": 0},
)
THING_IDS = (1, 2, 3)
SKY, GROUND, BACKGROUND = 5, 6, 7
_COLORS = {c["id"]: np.array(c["color"], dtype=np.float64) for c in CATEGORIES}


@dataclass(frozen=True)
class ShapeInstance:
    category_id: int
    mask: np.ndarray  # bool [H, W]
    polygons: tuple[tuple[float, ...], ...]  # COCO polygons [x1, y1, x2, y2, ...]
    iscrowd: bool


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # uint8 [H, W, 3]
    things: tuple[ShapeInstance, ...]
    stuff: dict  # category id -> bool [H, W] (non-empty only)
    void: np.ndarray  # bool [H, W]: unlabelled pixels


def _polygon(category_id: int, cx: float, cy: float, r: float, rng: np.random.Generator) -> list[float]:
    if category_id == 1:  # circle: a 24-gon
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        xs, ys = cx + r * np.cos(angles), cy + r * np.sin(angles)
    elif category_id == 2:  # axis-aligned rectangle of random aspect
        aspect = rng.uniform(0.5, 1.0)
        hw, hh = (r, r * aspect) if rng.random() < 0.5 else (r * aspect, r)
        xs = np.array([cx - hw, cx + hw, cx + hw, cx - hw])
        ys = np.array([cy - hh, cy - hh, cy + hh, cy + hh])
    else:  # triangle: equilateral, random rotation
        start = rng.uniform(0, 2 * np.pi)
        angles = start + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
        xs, ys = cx + r * np.cos(angles), cy + r * np.sin(angles)
    return [float(round(v, 2)) for pair in zip(xs, ys) for v in pair]


def _rasterise(polygons: list[list[float]], h: int, w: int) -> np.ndarray:
    rle = mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))
    return mask_utils.decode(rle).astype(bool)


def _place(rng: np.random.Generator, category_id: int, r: float, size: int, occupied: np.ndarray,
           tries: int = 40) -> tuple[list[float], np.ndarray] | None:
    for _ in range(tries):
        cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
        poly = _polygon(category_id, cx, cy, r, rng)
        mask = _rasterise([poly], size, size)
        if mask.sum() >= 6 and not (mask & occupied).any():
            return poly, mask
    return None


def make_scene(rng: np.random.Generator, size: int, *, max_things: int = 4, crowd_prob: float = 0.15,
               void_prob: float = 0.5) -> Scene:
    """One random scene of `size`×`size` pixels."""
    rows = np.arange(size)[:, None].astype(np.float64)
    cols = np.arange(size)[None, :].astype(np.float64)
    slope = rng.uniform(-0.15, 0.15)
    top = rng.uniform(0.2, 0.4) * size + slope * (cols - size / 2)
    bottom = rng.uniform(0.6, 0.8) * size - slope * (cols - size / 2)
    bands = np.where(rows < top, SKY, np.where(rows >= bottom, GROUND, BACKGROUND))
    void = np.zeros((size, size), dtype=bool)
    if rng.random() < void_prob:
        void = np.abs(rows - top) < 1.0  # a ~2 px unlabelled seam between sky and background

    occupied = np.zeros((size, size), dtype=bool)
    things: list[ShapeInstance] = []
    if rng.random() < crowd_prob:  # a crowd: several small shapes of one class, one annotation
        category_id = int(rng.choice(THING_IDS))
        polys, union = [], np.zeros_like(occupied)
        for _ in range(3):
            placed = _place(rng, category_id, rng.uniform(0.04, 0.06) * size, size, occupied | union)
            if placed is not None:
                polys.append(placed[0])
                union |= placed[1]
        if polys:
            things.append(ShapeInstance(category_id, union, tuple(tuple(p) for p in polys), True))
            occupied |= _dilate(union)
    for _ in range(int(rng.integers(1, max_things + 1))):
        category_id = int(rng.choice(THING_IDS))
        placed = _place(rng, category_id, rng.uniform(0.08, 0.18) * size, size, occupied)
        if placed is None:
            continue
        poly, mask = placed
        things.append(ShapeInstance(category_id, mask, (tuple(poly),), False))
        occupied |= _dilate(mask)

    thing_pixels = np.zeros_like(occupied)
    for thing in things:
        thing_pixels |= thing.mask
    void &= ~thing_pixels
    stuff = {}
    for category_id in (SKY, BACKGROUND, GROUND):
        mask = (bands == category_id) & ~thing_pixels & ~void
        if mask.any():
            stuff[category_id] = mask

    image = np.zeros((size, size, 3), dtype=np.float64)
    for category_id, mask in stuff.items():
        image[mask] = _COLORS[category_id]
    for thing in things:
        tint = rng.normal(0.0, 12.0, size=3)  # instances of a class differ a little
        image[thing.mask] = _COLORS[thing.category_id] + tint
    image[void] = (20.0, 20.0, 20.0)
    image += rng.normal(0.0, 6.0, size=image.shape) + rng.uniform(-20, 20)  # sensor noise + exposure
    return Scene(image=np.clip(image, 0, 255).round().astype(np.uint8), things=tuple(things), stuff=stuff,
                 void=void)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Grow a mask by one pixel (keeps shapes from touching, so instances stay separable)."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out
