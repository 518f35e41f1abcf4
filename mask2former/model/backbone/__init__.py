"""Backbones: the Swin Transformer and EfficientViT, each with its release-checkpoint loader."""

from mask2former.model.backbone.efficientvit import EFFICIENTVIT_PRESETS, EfficientViT, EfficientViTPreset
from mask2former.model.backbone.efficientvit_checkpoint import (
    EfficientViTLoadReport,
    adapt_efficientvit_state_dict,
    load_efficientvit_checkpoint,
)
from mask2former.model.backbone.swin import FEATURE_NAMES, SWIN_PRESETS, SwinPreset, SwinTransformer
from mask2former.model.backbone.swin_checkpoint import (
    SwinLoadReport,
    adapt_swin_state_dict,
    load_swin_checkpoint,
    read_checkpoint_state_dict,
)

__all__ = [
    "EFFICIENTVIT_PRESETS", "EfficientViT", "EfficientViTLoadReport", "EfficientViTPreset", "FEATURE_NAMES",
    "SWIN_PRESETS", "SwinLoadReport", "SwinPreset", "SwinTransformer", "adapt_efficientvit_state_dict",
    "adapt_swin_state_dict", "load_efficientvit_checkpoint", "load_swin_checkpoint", "read_checkpoint_state_dict",
]
