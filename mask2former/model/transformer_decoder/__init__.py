"""Masked-attention transformer decoder (the predictor)."""

from mask2former.model.transformer_decoder.mask2former_decoder import MultiScaleMaskedTransformerDecoder

__all__ = ["MultiScaleMaskedTransformerDecoder"]
