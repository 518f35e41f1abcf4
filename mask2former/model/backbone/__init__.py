"""Backbones: the Swin Transformer and its release-checkpoint loader."""

from mask2former.model.backbone.swin import FEATURE_NAMES, SWIN_PRESETS, SwinPreset, SwinTransformer
from mask2former.model.backbone.swin_checkpoint import (
    SwinLoadReport, adapt_swin_state_dict, load_swin_checkpoint, read_checkpoint_state_dict,
)

__all__ = [
    "FEATURE_NAMES", "SWIN_PRESETS", "SwinLoadReport", "SwinPreset", "SwinTransformer", "adapt_swin_state_dict",
    "load_swin_checkpoint", "read_checkpoint_state_dict",
]
