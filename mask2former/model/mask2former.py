"""The Mask2Former network: backbone -> pixel decoder -> masked-attention transformer decoder.

Module names mirror the original (`backbone`, `sem_seg_head.pixel_decoder`,
`sem_seg_head.predictor`) so state dicts line up with the reference implementation's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mask2former.model.pixel_decoder.deformable_decoder import MSDeformAttnPixelDecoder
from mask2former.model.transformer_decoder.mask2former_decoder import MultiScaleMaskedTransformerDecoder
from mask2former.model.versioning import VersionedModule


class Mask2FormerHead(nn.Module):
    """Pixel decoder + predictor: backbone features -> predictions."""

    def __init__(self, *, pixel_decoder: MSDeformAttnPixelDecoder, predictor: MultiScaleMaskedTransformerDecoder) -> None:
        super().__init__()
        self.pixel_decoder = pixel_decoder
        self.predictor = predictor

    def forward(self, features: dict[str, Tensor]) -> dict:
        mask_features, multi_scale = self.pixel_decoder(features)
        return self.predictor(multi_scale, mask_features)


class Mask2FormerModel(VersionedModule):
    """forward(images: [B, 3, H, W] RGB in [0, 1]) ->
    {"pred_logits": [B, Q, K+1] (last = no object),
     "pred_masks": [B, Q, ceil(H/s), ceil(W/s)] logits, s = common_stride (4 by default),
     "aux_outputs": [{"pred_logits", "pred_masks"}, ...]  (one per decoder layer, earliest first;
                    only in training mode with deep supervision)}.

    Images are normalised inside with the `pixel_mean` / `pixel_std` buffers (given for [0, 1]
    inputs), so callers and exported graphs feed plain RGB.
    """

    _version = 1

    def __init__(
        self,
        *,
        backbone: nn.Module,
        pixel_decoder: MSDeformAttnPixelDecoder,
        predictor: MultiScaleMaskedTransformerDecoder,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        if len(pixel_mean) != 3 or len(pixel_std) != 3 or min(pixel_std) <= 0:
            raise ValueError(f"pixel_mean/pixel_std must be 3 values with std > 0, got {pixel_mean}, {pixel_std}")
        self.backbone = backbone
        self.sem_seg_head = Mask2FormerHead(pixel_decoder=pixel_decoder, predictor=predictor)
        self.deep_supervision = deep_supervision
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def num_classes(self) -> int:
        return self.sem_seg_head.predictor.num_classes

    @property
    def num_queries(self) -> int:
        return self.sem_seg_head.predictor.num_queries

    def normalize(self, images: Tensor) -> Tensor:
        return (images - self.pixel_mean.to(images.dtype)) / self.pixel_std.to(images.dtype)

    def forward(self, images: Tensor) -> dict:
        features = self.backbone(self.normalize(images))
        outputs = self.sem_seg_head(features)
        if not (self.training and self.deep_supervision):
            outputs.pop("aux_outputs")
        return outputs
