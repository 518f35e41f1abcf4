"""Pixel decoder: multi-scale deformable-attention encoder + FPN.

`deformable_decoder` is the pixel decoder module (encoder layers, FPN, mask features);
`deformable_attention` is the attention op its encoder layers call (plain PyTorch, ONNX-exportable).
"""

from mask2former.model.pixel_decoder.deformable_attention import MSDeformAttn, ms_deform_attn_sample
from mask2former.model.pixel_decoder.deformable_decoder import MSDeformAttnPixelDecoder

__all__ = ["MSDeformAttn", "MSDeformAttnPixelDecoder", "ms_deform_attn_sample"]
