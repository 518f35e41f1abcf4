"""Batching: pad to a common size that is a multiple of 32, keep per-image targets apart.

Images stay RGB in [0, 1]: the model normalises with its own `pixel_mean` / `pixel_std` buffers, so the
same graph serves training, evaluation and the exported ONNX model (whose input is a [0, 1] image).
Padding uses the per-channel mean, so padded pixels are exactly 0 after the model's normalisation, as
in the original Mask2Former (which normalises before padding with zeros).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mask2former.data.label_map import IGNORE_INDEX
from mask2former.data.transforms import SIZE_DIVISIBILITY, pad_to_multiple, round_up

_META_KEYS = ("image_id", "file_name", "orig_size", "truth_sem_seg", "panoptic", "instances")


class Collator:
    """`collate(items) -> batch` for a DataLoader.

    The batch: `images` float [B, 3, Hp, Wp] (RGB in [0, 1], padded with the pixel mean), `targets` a list of
    `{"labels": LongTensor[N], "masks": BoolTensor[N, Hp, Wp]}`, `sem_seg` LongTensor[B, Hp, Wp] padded
    with 255, and `metas` a list of `{"image_id", "file_name", "orig_size", "image_size" (h, w before
    padding), "truth_sem_seg", "panoptic", "instances"}` (the evaluation ground truth, unpadded, at the
    original size `orig_size`; see `mask2former.data.base`).
    """

    def __init__(self, *, pixel_mean: Sequence[float], size_divisibility: int = SIZE_DIVISIBILITY):
        if len(pixel_mean) != 3:
            raise ValueError(f"pixel_mean needs 3 values, got {pixel_mean}")
        self.mean = torch.tensor([float(v) for v in pixel_mean]).view(3, 1, 1)
        self.size_divisibility = int(size_divisibility)

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not items:
            raise ValueError("cannot collate an empty batch")
        height = round_up(max(int(item["image"].shape[-2]) for item in items), self.size_divisibility)
        width = round_up(max(int(item["image"].shape[-1]) for item in items), self.size_divisibility)
        size = (height, width)
        images, targets, sem_segs, metas = [], [], [], []
        for item in items:
            images.append(self._pad_image(item["image"], size))
            targets.append({"labels": item["labels"], "masks": pad_to_multiple(item["masks"], size, False)})
            sem_segs.append(pad_to_multiple(item["sem_seg"], size, IGNORE_INDEX))
            meta = {key: item.get(key) for key in _META_KEYS}
            meta["image_size"] = (int(item["image"].shape[-2]), int(item["image"].shape[-1]))
            metas.append(meta)
        return {"images": torch.stack(images), "targets": targets, "sem_seg": torch.stack(sem_segs),
                "metas": metas}

    def _pad_image(self, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """[3, h, w] -> [3, H, W] with the new pixels set to the channel mean (0 once normalised)."""
        padded = self.mean.to(image.dtype).expand(3, *size).clone()
        padded[:, : image.shape[-2], : image.shape[-1]] = image
        return padded
