"""The module that is exported: Mask2Former + batched, traceable post-processing per mode.

TAO's deploy tools expect post-processed outputs, not raw query logits, so the exported graph ends
with the mode's batched post-processing at the export resolution (H x W = export.input_height x
export.input_width). Input and outputs (B = batch, dynamic when export.batch_size is -1):

    inputs        float32 [B, 3, H, W]   RGB in [0, 1]; normalisation happens inside the graph

    semantic  pred_masks    float32 [B, K, H, W]  per-class score: sum_q p(c|q) * sigmoid(mask_q)
                                                  (argmax over K gives the label map)
    instance  pred_masks    float32 [B, T, H, W]  binary masks (0. / 1.) of the top-T (query, class)
                                                  pairs, T = min(model.test_topk_per_image, Q * K),
                                                  best first
              pred_scores   float32 [B, T]        p(class|query) * mean mask probability inside the mask
              pred_classes  int32   [B, T]        train ids 0..K-1
    panoptic  prob_masks    float32 [B, Q, H, W]  pred_scores[q] * pred_masks[q]
              pred_masks    float32 [B, Q, H, W]  sigmoid mask probabilities
              pred_scores   float32 [B, Q]        max_c p(c|q) over the K classes AND "no object"
              pred_classes  int32   [B, Q]        its argmax: 0..K-1, or K = "no object"

and, after TAO's outputs (so positional and by-name TAO consumers are unaffected), two raw outputs:

              raw_pred_logits float32 [B, Q, K+1]    class logits (last = "no object")
              raw_pred_masks  float32 [B, Q, h, w]   mask logits at 1/common_stride (h = ceil(H/4)...)

K = model.sem_seg_head.num_classes, Q = model.mask_former.num_object_queries. The raw outputs are what
the PyTorch post-processing consumes, so the deploy side (ONNX Runtime / TensorRT) runs exactly the same
post-processing, metrics and output writers as the PyTorch path; TAO's outputs serve TAO-style consumers
(`mask2former.deploy.decode` reads them back into the same result structure). The panoptic outputs keep
"no object" in the argmax (TAO drops it) so that the deploy side can apply exactly the filter the
PyTorch post-processing applies (`labels != K and score > object_mask_threshold`).

Every computation is float32 (mask logits are upsampled before the sigmoid, as in the PyTorch path);
classes are int32 because TensorRT engines handle int32 outputs on every version. The semantic map is a
batched matmul rather than an einsum, which TensorRT parses on every version.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

MODES = ("semantic", "instance", "panoptic")
INPUT_NAME = "inputs"
OUTPUT_NAMES: dict[str, tuple[str, ...]] = {
    "semantic": ("pred_masks",),
    "instance": ("pred_masks", "pred_scores", "pred_classes"),
    "panoptic": ("prob_masks", "pred_masks", "pred_scores", "pred_classes"),
}


def output_names(mode: str) -> tuple[str, ...]:
    """TAO's output names for `mode`, in graph order."""
    if mode not in OUTPUT_NAMES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return OUTPUT_NAMES[mode]


def output_shapes(mode: str, *, num_classes: int, num_queries: int, topk: int, height: int, width: int,
                  batch: int | str = "batch") -> dict[str, tuple[list, str]]:
    """name -> (shape, dtype) of each output, as documented in the module docstring."""
    k, q = int(num_classes), int(num_queries)
    t = min(int(topk), q * k)
    if mode == "semantic":
        return {"pred_masks": ([batch, k, height, width], "float32")}
    if mode == "instance":
        return {"pred_masks": ([batch, t, height, width], "float32"), "pred_scores": ([batch, t], "float32"),
                "pred_classes": ([batch, t], "int32")}
    if mode == "panoptic":
        return {"prob_masks": ([batch, q, height, width], "float32"),
                "pred_masks": ([batch, q, height, width], "float32"),
                "pred_scores": ([batch, q], "float32"), "pred_classes": ([batch, q], "int32")}
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


class ExportableMask2Former(nn.Module):
    """`model` (images [B, 3, H, W] in [0, 1] -> {"pred_logits" [B, Q, K+1], "pred_masks" [B, Q, h, w]})
    followed by the `mode`'s post-processing at `output_size` (H, W). Returns a tuple in
    `output_names(mode)` order, then (with `raw_outputs`) the raw class and mask logits."""

    def __init__(self, model: nn.Module, *, mode: str, output_size: Sequence[int], topk: int,
                 raw_outputs: bool = True) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        self.model = model
        self.mode = mode
        self.output_size = (int(output_size[0]), int(output_size[1]))
        self.topk = int(topk)
        self.raw_outputs = bool(raw_outputs)

    def forward(self, inputs: Tensor) -> tuple[Tensor, ...]:
        outputs = self.model(inputs)
        logits = outputs["pred_logits"].float()
        mask_logits = outputs["pred_masks"].float()
        if self.mode == "semantic":
            tao: tuple[Tensor, ...] = (self._semantic(logits, mask_logits),)
        elif self.mode == "instance":
            tao = self._instance(logits, mask_logits)
        else:
            tao = self._panoptic(logits, mask_logits)
        return tao + (logits, mask_logits) if self.raw_outputs else tao

    def _upsample(self, mask_logits: Tensor) -> Tensor:
        """[B, N, h, w] logits -> [B, N, H, W] logits (bilinear, as the PyTorch post-processing)."""
        return F.interpolate(mask_logits, size=self.output_size, mode="bilinear", align_corners=False)

    def _semantic(self, logits: Tensor, mask_logits: Tensor) -> Tensor:
        probs = logits.softmax(-1)[..., :-1]  # [B, Q, K], "no object" dropped
        masks = self._upsample(mask_logits).sigmoid()  # [B, Q, H, W]
        # [B, K, Q] @ [B, Q, H*W] -> [B, K, H*W] -> [B, K, H, W]
        scores = torch.matmul(probs.transpose(1, 2), masks.flatten(2))
        return scores.unflatten(2, self.output_size)

    def _instance(self, logits: Tensor, mask_logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        num_classes = logits.shape[-1] - 1
        probs = logits.softmax(-1)[..., :-1]  # [B, Q, K]
        k = min(self.topk, probs.shape[1] * num_classes)
        # Flatten (query, class) pairs: [B, Q, K] -> [B, Q*K]; pair index = query * K + class.
        scores, pairs = probs.flatten(1).topk(k, dim=1, sorted=True)
        classes = pairs % num_classes
        queries = torch.div(pairs, num_classes, rounding_mode="floor")
        # Pick each pair's mask before upsampling (interpolation is per channel, so the order does not
        # matter and this upsamples T maps instead of Q): index [B, T] -> [B, T, h, w].
        h, w = mask_logits.shape[-2:]
        index = queries[:, :, None, None].expand(-1, -1, h, w)
        chosen = self._upsample(torch.gather(mask_logits, 1, index))  # [B, T, H, W]
        binary = (chosen > 0).float()
        flat = binary.flatten(2)  # [B, T, H*W]
        mask_scores = (chosen.sigmoid().flatten(2) * flat).sum(-1) / (flat.sum(-1) + 1e-6)
        return binary, scores * mask_scores, classes.to(torch.int32)

    def _panoptic(self, logits: Tensor, mask_logits: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        scores, classes = logits.softmax(-1).max(-1)  # [B, Q]; class K = "no object"
        masks = self._upsample(mask_logits).sigmoid()  # [B, Q, H, W]
        prob_masks = scores[:, :, None, None] * masks
        return prob_masks, masks, scores, classes.to(torch.int32)
