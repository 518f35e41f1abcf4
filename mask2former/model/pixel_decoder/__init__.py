"""Pixel decoder: multi-scale deformable-attention encoder + FPN."""

from mask2former.model.pixel_decoder.ms_deform_attn import MSDeformAttn, ms_deform_attn_sample
from mask2former.model.pixel_decoder.msdeformattn import MSDeformAttnPixelDecoder

__all__ = ["MSDeformAttn", "MSDeformAttnPixelDecoder", "ms_deform_attn_sample"]
