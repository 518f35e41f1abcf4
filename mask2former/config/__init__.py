"""Mask2Former experiment config: dataclasses that mirror TAO's spec, the single source of the schemas."""

from mask2former.config.actions import (
    EvaluateConfig,
    ExportConfig,
    GenTrtEngineConfig,
    InferenceConfig,
    QuantizeConfig,
    TensorRTConfig,
)
from mask2former.config.convert import config_from_dict, config_to_dict, default_spec
from mask2former.config.dataset import AugmentationConfig, DatasetConfig, DatasetSplitConfig
from mask2former.config.experiment import ExperimentConfig, WandBConfig
from mask2former.config.model import (
    BackboneConfig,
    EfficientViTConfig,
    MaskFormerConfig,
    ModelConfig,
    SemSegHeadConfig,
    SwinConfig,
)
from mask2former.config.train import OptimConfig, TrainConfig

__all__ = [
    "AugmentationConfig", "BackboneConfig", "DatasetConfig", "DatasetSplitConfig", "EfficientViTConfig",
    "EvaluateConfig", "ExperimentConfig", "ExportConfig", "GenTrtEngineConfig", "InferenceConfig",
    "MaskFormerConfig", "ModelConfig", "OptimConfig", "QuantizeConfig", "SemSegHeadConfig", "SwinConfig",
    "TensorRTConfig", "TrainConfig", "WandBConfig", "config_from_dict", "config_to_dict", "default_spec",
]
